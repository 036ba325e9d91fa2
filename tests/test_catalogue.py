"""The catalogue and the experiments agree: every experiment names a catalogued claim."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness import catalogue
from reporting import placeholders

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


def claim_ids_in(path: Path) -> list[str]:
    """IDs in `@pytest.mark.claim("ID")` decorators, read from the source without importing it."""
    ids = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "claim"
                and node.args and isinstance(node.args[0], ast.Constant)):
            ids.append(node.args[0].value)
    return ids


CLAIMS = catalogue.load()
ENTRY = '[[claim]]\nid = "X1"\nsection = "s"\nwhere = "w"\ntitle = "t"\nstatement = "t"\nexpected = "holds"\n' \
        'file = "experiments/test_x1_thing.py"\ndeciding = { lost = "exact" }\n'


def test_catalogue_claims_are_complete():
    assert CLAIMS, "the catalogue is empty"
    for claim in CLAIMS.values():
        assert claim.statement and claim.section and claim.title, claim.id


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS.values() if c.file])
def test_each_claims_file_exists_and_holds_its_marker(claim_id):
    claim = CLAIMS[claim_id]
    path = ROOT / claim.file
    assert path.is_file(), f"{claim_id}: catalogue names {claim.file}, which does not exist"
    assert claim_id in claim_ids_in(path), f"{claim.file} has no @pytest.mark.claim({claim_id!r})"
    assert claim_id.lower() in path.name, f"{claim.file}: the file name should lead to {claim_id}"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("test_*.py")), ids=lambda p: p.name)
def test_every_experiment_names_a_catalogued_claim_whose_file_it_is(path):
    ids = claim_ids_in(path)
    assert ids, f"{path.name} tags no test with @pytest.mark.claim(ID)"
    assert set(ids) <= set(CLAIMS), f"{path.name} names claims missing from catalogue.toml"
    for claim_id in set(ids):
        assert CLAIMS[claim_id].file == f"experiments/{path.name}", f"catalogue names another file for {claim_id}"


def test_duplicate_ids_are_refused(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text(ENTRY + ENTRY)
    with pytest.raises(catalogue.CatalogueError, match="duplicate"):
        catalogue.load(bad)


@pytest.mark.parametrize("change, message", [
    (('expected = "holds"', 'expected = "maybe"'), "unknown verdict"),
    (('title = "t"', 'title = "t"\ncolour = "red"'), "unknown fields"),
    (('title = "t"\n', ''), "missing fields"),
    (('title = "t"', 'title = "' + "x" * 61 + '"'), "at most 60"),
    (('expected = "holds"', 'expected = "holds"\nexpected_when = { no_gil = "refuted", warm = "holds" }'),
     "unknown trait"),
    (('file = "experiments/test_x1_thing.py"\n', ''), "names no experiment file"),
    (('deciding = { lost = "exact" }\n', ''), "names no deciding checks"),
    (('{ lost = "exact" }', '{ lost = "roughly" }'), "unknown threshold rule"),
    (('{ lost = "exact" }', '{ a = "exact", b = "exact", c = "exact" }'), "at most 2"),
    (('{ lost = "exact" }', '{ lost = "exact" }\nunfalsified = { seen = "an OS guarantee" }'),
     "not one of its deciding checks"),
])
def test_malformed_entries_are_refused_loudly(tmp_path, change, message):
    bad = tmp_path / "c.toml"
    bad.write_text(ENTRY.replace(*change))
    with pytest.raises(catalogue.CatalogueError, match=message):
        catalogue.load(bad)


def test_expectations_may_depend_on_the_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(ENTRY + 'expected_when = { no_gil = "refuted" }\n')
    claim = catalogue.load(path)["X1"]
    assert claim.expected_for(set()) == "holds" and claim.expected_for({"no_gil"}) == "refuted"


def test_every_deciding_check_cites_a_rule_and_every_reason_a_deciding_check():
    for claim in CLAIMS.values():
        if claim.expected == "not-testable":
            continue
        assert 1 <= len(claim.deciding) <= catalogue.MAX_DECIDING, claim.id
        assert set(claim.unfalsified) <= set(claim.deciding), claim.id


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS.values() if c.readings])
def test_each_reading_is_decided_by_test_functions_of_the_claims_file(claim_id):
    claim = CLAIMS[claim_id]
    defined = {node.name for node in ast.walk(ast.parse((ROOT / claim.file).read_text()))
               if isinstance(node, ast.FunctionDef)}
    for reading, tests in claim.readings.items():
        missing = set(tests) - defined
        assert not missing, f"{claim_id}: reading {reading!r} names {missing}, not in {claim.file}"
    listed = [t for tests in claim.readings.values() for t in tests]
    assert len(listed) == len(set(listed)), f"{claim_id}: a test decides two readings"


def test_no_caveat_carries_a_bare_number():
    """Every number in a caveat sits in a placeholder that the report fills from the runs
    (reporting/placeholders.py); none is typed in, so none can go stale."""
    bare = {c.id: placeholders.bare_digits(c.caveat) for c in CLAIMS.values()}
    assert not {k: v for k, v in bare.items() if v}, bare


def test_placeholders_are_well_formed():
    for claim in CLAIMS.values():
        for field, text in placeholders.texts(claim):
            assert not placeholders.malformed(text), f"{claim.id}.{field}: {placeholders.malformed(text)}"


MAX_TEST_LINES = 60  # a test decides; measuring belongs in a step it calls (test_th4's scaling() is the model)


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("test_*.py")), ids=lambda p: p.name)
def test_experiment_tests_are_short(path):
    long_tests = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        and node.end_lineno - node.lineno + 1 > MAX_TEST_LINES
    ]
    assert not long_tests, f"{path.name}: split into a measure step and a short deciding test: {long_tests}"
