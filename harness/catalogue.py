"""The claim catalogue (catalogue.toml): its schema, the verdict states, and how parts combine.

This module is the one place that defines what a claim entry may hold and which verdict
states exist; report.py, the experiments' conftest and the tests all read them from here.
Kept in TOML rather than Python so that adding a claim is an edit to data, and so that
report.py can read it without importing any experiment.
"""
from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from harness import thresholds

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE_PATH = ROOT / "catalogue.toml"

# --- verdict states -------------------------------------------------------------------------
# What a claim can be found to do (decided from checks), what the catalogue may expect, and
# the two states a run may end in without deciding: "undecided" (measured, but an interval
# straddled its threshold) and "not-measured" (skipped here, with the reason).
DECIDED = ("holds", "holds-with-caveat", "refuted")
VERDICTS = (*DECIDED, "not-testable")
UNDECIDED = "undecided"
NOT_MEASURED = "not-measured"
STATES = (*VERDICTS, UNDECIDED, NOT_MEASURED)
# Combining a claim's parts: the strongest qualifier among the parts that decided something.
RANK = ("refuted", "holds-with-caveat", "holds", UNDECIDED, NOT_MEASURED)
LABELS = {NOT_MEASURED: "not measured here"}

# Environment traits an expectation may depend on (catalogue: expected_when = { no_gil = ... }).
TRAITS = {"no_gil": "the GIL was off for the whole run (free-threaded build, GIL not re-enabled)"}
TITLE_MAX = 60
MAX_DECIDING = 2  # deciding checks per claim, each with an opposite world or a reason why none


def label(state: str) -> str:
    """How a verdict state reads in tables and prose."""
    return LABELS.get(state, state)


def combine(parts: Iterable[tuple[str, bool]]) -> str:
    """A claim's verdict from its parts, each given as (verdict, measured_support).

    `measured_support` is true when the part has at least one support check that was decided
    (passed or failed). Caveat-only parts qualify a verdict but never make one: a claim whose
    support was not measured reads not-measured (or undecided, if support was measured but no
    interval cleared its threshold), whatever its caveat-only parts found.

    An undecided part could still end refuted or with its caveat shown, so it leaves the claim
    undecided unless the decided parts already refute it (nothing an open part shows can undo
    a refutation). A part that was not measured here decides nothing either way.
    """
    parts = list(parts)
    for verdict, _ in parts:
        if verdict not in STATES:
            raise ValueError(f"unknown verdict state {verdict!r}; known: {', '.join(STATES)}")
    deciding = [v for v, support in parts if support and v in DECIDED]
    if not deciding:
        return UNDECIDED if any(v == UNDECIDED for v, _ in parts) else NOT_MEASURED
    qualifiers = [v for v, support in parts if not support and v in DECIDED]
    verdict = min(deciding + qualifiers, key=RANK.index)
    if verdict != "refuted" and any(v == UNDECIDED for v, _ in parts):
        return UNDECIDED
    return verdict


# --- the schema -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    id: str
    section: str  # the notes' section heading it comes from
    where: str  # where in the notes the claim is made: section and item ("线程, item 5"), a pointer
    title: str  # at most TITLE_MAX characters, for tables
    statement: str  # the claim in the project's words
    expected: str  # what the experiments assert, as a verdict
    file: str = ""  # the experiment file, relative to the project root (optional when not-testable)
    control: str = ""  # the same-run control that shows the opposite outcome was reachable, or "none: why"
    caveat: str = ""  # written from measurements
    why_not_testable: str = ""
    predicted: str = ""  # the catalogue's prediction, kept where the measurement disagreed with it
    expected_when: Mapping[str, str] = field(default_factory=dict)  # trait -> verdict in that environment
    parts: Mapping[str, str] = field(default_factory=dict)  # test function or part -> its verdict, where the rule errs
    # The checks that carry the verdict (at most MAX_DECIDING), each with the threshold rule it cites
    # (harness.thresholds.RULES); each is measured beside an opposite world unless `unfalsified`
    # says why none can be built here (the report then marks the verdict as resting on it).
    deciding: Mapping[str, str] = field(default_factory=dict)  # check name -> threshold rule
    unfalsified: Mapping[str, str] = field(default_factory=dict)  # deciding check -> why no opposite world
    # Where a sentence of the notes has two readings, both, each with the test functions that
    # decide it; the report gives each reading its own verdict beside the claim's.
    readings: Mapping[str, list] = field(default_factory=dict)  # reading in words -> [test function, ...]

    def expected_for(self, traits: Iterable[str] = ()) -> str:
        """The expected verdict in an environment with these traits (e.g. {"no_gil"})."""
        for trait in traits:
            if trait in self.expected_when:
                return self.expected_when[trait]
        return self.expected

    def expected_for_part(self, part: str, traits: Iterable[str] = (), *, has_caveat_checks: bool) -> str:
        """What one part (one test's run, `test_x[params]`) must read; the one rule, written once.

        - The catalogue's `parts` names the part, or its test function: that verdict, in every
          environment (PR3's creation half holds inside a refuted claim; CO4 holds on uvloop).
        - Otherwise the claim's verdict here (`expected_for`), except that a part with no caveat
          check cannot show a caveat: where the claim expects holds-with-caveat, such a part
          expects holds, and the claim's caveat is another part's to show.
        """
        for name in (part, part.split("[")[0]):
            if name in self.parts:
                return self.parts[name]
        verdict = self.expected_for(traits)
        if verdict == "holds-with-caveat" and not has_caveat_checks:
            return "holds"
        return verdict


FIELDS = tuple(f.name for f in fields(Claim))
REQUIRED = tuple(f.name for f in fields(Claim) if f.default is MISSING and f.default_factory is MISSING)


class CatalogueError(ValueError):
    pass


def _check(claim: Claim, where: str) -> None:
    def fail(why: str):
        raise CatalogueError(f"{where}: {claim.id}: {why}")

    if claim.expected not in VERDICTS:
        fail(f"expects unknown verdict {claim.expected!r}; known: {', '.join(VERDICTS)}")
    if claim.predicted and claim.predicted not in VERDICTS:
        fail(f"has unknown predicted verdict {claim.predicted!r}")
    if len(claim.title) > TITLE_MAX:
        fail(f"title is {len(claim.title)} characters; at most {TITLE_MAX}")
    for test, verdict in claim.parts.items():
        if not test.startswith("test_"):
            fail(f"parts names {test!r}, which is not a test (test_...[params])")
        if verdict not in VERDICTS:
            fail(f"parts.{test} is unknown verdict {verdict!r}")
    for trait, verdict in claim.expected_when.items():
        if trait not in TRAITS:
            fail(f"expected_when names unknown trait {trait!r}; known: {', '.join(TRAITS)}")
        if verdict not in VERDICTS:
            fail(f"expected_when.{trait} is unknown verdict {verdict!r}")
    if len(claim.deciding) > MAX_DECIDING:
        fail(f"names {len(claim.deciding)} deciding checks; at most {MAX_DECIDING}")
    for check, rule in claim.deciding.items():
        if rule not in thresholds.RULES:
            fail(f"deciding.{check} cites unknown threshold rule {rule!r}; known: {', '.join(thresholds.RULES)}")
    for check, why in claim.unfalsified.items():
        if check not in claim.deciding:
            fail(f"unfalsified names {check!r}, which is not one of its deciding checks")
        if not why.strip():
            fail(f"unfalsified.{check} gives no reason")
    if claim.readings and len(claim.readings) < 2:
        fail("names one reading; readings are for a sentence with two or more")
    for reading, tests in claim.readings.items():
        if not tests or not all(isinstance(t, str) and t.startswith("test_") and "[" not in t for t in tests):
            fail(f"reading {reading!r} must list the test functions (test_...) that decide it")
    if claim.expected != "not-testable" and not claim.deciding:
        fail("names no deciding checks (deciding = { check_name = \"rule\" })")
    if claim.expected == "not-testable":
        if not claim.why_not_testable:
            fail("is not-testable but says not why")
    elif not claim.file:
        fail("names no experiment file (file = \"experiments/test_<id>_....py\")")
    if claim.file and not (claim.file.startswith("experiments/test_") and claim.file.endswith(".py")):
        fail(f"file {claim.file!r} is not an experiments/test_*.py file")


def load(path: Path = CATALOGUE_PATH) -> dict[str, Claim]:
    """Return the claims by ID, in catalogue order; raise CatalogueError on a malformed file.

    Unknown fields fail loudly: a misspelt key must not silently drop a caveat or a control.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: cannot read the catalogue: {exc}") from None
    unknown_top = set(data) - {"claim"}
    if unknown_top:
        raise CatalogueError(f"{path}: unknown top-level keys {sorted(unknown_top)}; only [[claim]] tables")
    claims: dict[str, Claim] = {}
    for row in data.get("claim", []):
        name = row.get("id", "?")
        unknown = set(row) - set(FIELDS)
        if unknown:
            raise CatalogueError(f"{path}: {name}: unknown fields {sorted(unknown)}; known: {', '.join(FIELDS)}")
        missing = [f for f in REQUIRED if f not in row]
        if missing:
            raise CatalogueError(f"{path}: {name}: missing fields {missing}")
        claim = Claim(**row)
        if claim.id in claims:
            raise CatalogueError(f"{path}: duplicate claim ID {claim.id}")
        _check(claim, str(path))
        claims[claim.id] = claim
    return claims
