"""The claim catalogue (catalogue.toml), loaded once and checked for shape.

Kept in TOML rather than Python so that adding a claim is an edit to data, and so that
report.py can read it without importing any experiment.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

CATALOGUE_PATH = Path(__file__).resolve().parent.parent / "catalogue.toml"
VERDICTS = ("holds", "holds-with-caveat", "refuted", "not-testable")


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    statement: str
    expected: str
    caveat: str = ""
    why_not_testable: str = ""
    predicted: str = ""  # the claim catalogue's prediction, kept where the measurement disagreed with it


class CatalogueError(ValueError):
    pass


def load(path: Path = CATALOGUE_PATH) -> dict[str, Claim]:
    """Return the claims by ID, in catalogue order; raise CatalogueError on a malformed file."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    claims: dict[str, Claim] = {}
    for row in data.get("claim", []):
        try:
            claim = Claim(**row)
        except TypeError as exc:
            raise CatalogueError(f"{path}: bad claim entry {row.get('id', row)!r}: {exc}") from None
        if claim.id in claims:
            raise CatalogueError(f"{path}: duplicate claim ID {claim.id}")
        if claim.expected not in VERDICTS:
            raise CatalogueError(f"{path}: {claim.id} expects unknown verdict {claim.expected!r}")
        if claim.predicted and claim.predicted not in VERDICTS:
            raise CatalogueError(f"{path}: {claim.id} has unknown predicted verdict {claim.predicted!r}")
        if claim.expected == "not-testable" and not claim.why_not_testable:
            raise CatalogueError(f"{path}: {claim.id} is not-testable but says not why")
        claims[claim.id] = claim
    return claims
