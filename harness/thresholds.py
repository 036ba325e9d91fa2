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
- Otherwise, between two predicted figures a and b: ``between(a, b)``, their geometric midpoint.
"""
from __future__ import annotations

import math

ORDER_OF_MAGNITUDE = math.sqrt(10)
CHEAPER_THAN = 1.0
IDLE_CORES = math.sqrt(0.01 * 1.0)


def about(q: float) -> tuple[float, float]:
    """The range "about q" covers: within a factor of 2."""
    return q / 2, q * 2


def between(a: float, b: float) -> float:
    """The geometric midpoint of two predicted figures (both positive)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"between() needs two positive predictions, got {a} and {b}")
    return math.sqrt(a * b)
