"""One threshold rule per kind of statement, written once; every deciding threshold cites its rule.

A threshold sits between what the claim predicts and what its negation predicts, chosen by the
kind of statement the claim makes, never by what a run measured:

- "costly", "cheap compared with", "far less", "an order of magnitude": ORDER_OF_MAGNITUDE, the
  geometric midpoint between "comparable" (1x) and "ten times" (10x), i.e. sqrt(10).
- "cheaper than", "costlier than", "faster", "sooner": CHEAPER_THAN, a ratio against 1, decided
  by its interval.
- "about Q": ``about(Q)``, within a factor of 2 of Q.
- "the CPU is free", "off the CPU": IDLE_CORES, the geometric midpoint between a hundredth of a
  core (a generous bound on a wake-up's cost) and a whole core (a wait that spins), i.e. 0.1.
- Otherwise, between two predicted figures a and b: ``between(a, b)``, their geometric midpoint
  (or halfway, where the module says so: a count of cores, a fraction between none and all).
- A count the claim predicts exactly (no message lost, no write seen): "exact", the claim's
  count itself; its opposite world's count must differ.

RULES names each rule for the catalogue's `deciding` table, which lists every claim's deciding
checks with the rule each threshold cites.
"""
from __future__ import annotations

import math

ORDER_OF_MAGNITUDE = math.sqrt(10)
CHEAPER_THAN = 1.0
IDLE_CORES = math.sqrt(0.01 * 1.0)

RULES = {
    "order-of-magnitude": "against sqrt(10), the geometric midpoint between comparable (1x) and ten times",
    "cheaper-than": "a ratio against 1, by its interval",
    "about": "within a factor of 2 of the stated quantity",
    "idle-cores": "against 0.1 cores, between a wake-up's cost (0.01) and a spinning wait (1)",
    "between": "between the figure the claim predicts and the one its negation predicts",
    "exact": "the count the claim predicts exactly; the opposite world's count differs",
}


def about(q: float) -> tuple[float, float]:
    """The range "about q" covers: within a factor of 2."""
    return q / 2, q * 2


def between(a: float, b: float) -> float:
    """The geometric midpoint of two predicted figures (both positive)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"between() needs two positive predictions, got {a} and {b}")
    return math.sqrt(a * b)
