"""The catalogue and the experiments agree: every experiment names a catalogued claim."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness import catalogue

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def claim_ids_in(path: Path) -> list[str]:
    """IDs in `@pytest.mark.claim("ID")` decorators, read from the source without importing it."""
    ids = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "claim"
                and node.args and isinstance(node.args[0], ast.Constant)):
            ids.append(node.args[0].value)
    return ids


def test_catalogue_has_the_28_claims_with_unique_ids_and_known_verdicts():
    claims = catalogue.load()
    assert len(claims) == 28
    assert all(c.statement and c.section for c in claims.values())


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("test_*.py")), ids=lambda p: p.name)
def test_every_experiment_names_a_catalogued_claim(path):
    ids = claim_ids_in(path)
    assert ids, f"{path.name} tags no test with @pytest.mark.claim(ID)"
    assert set(ids) <= set(catalogue.load()), f"{path.name} names claims missing from catalogue.toml"


def test_duplicate_ids_are_refused(tmp_path):
    bad = tmp_path / "c.toml"
    entry = '[[claim]]\nid = "X1"\nsection = "s"\nstatement = "t"\nexpected = "holds"\n'
    bad.write_text(entry + entry)
    with pytest.raises(catalogue.CatalogueError, match="duplicate"):
        catalogue.load(bad)


def test_unknown_verdicts_are_refused(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[[claim]]\nid = "X1"\nsection = "s"\nstatement = "t"\nexpected = "maybe"\n')
    with pytest.raises(catalogue.CatalogueError, match="unknown verdict"):
        catalogue.load(bad)
