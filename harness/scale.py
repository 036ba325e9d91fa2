"""The run's scale (``--scale quick|full``), readable at import time.

Experiments size their parametrize lists at import, before any fixture exists, so the
root conftest stores the scale here in pytest_configure, which runs before collection.
"""
from __future__ import annotations

SCALES = ("quick", "full")
FULL_SCALE_FOLDER = "full-scale"  # where under the storage a full-scale run is saved (conftest.py)
_current = "quick"


def set_current(scale: str) -> None:
    global _current
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    _current = scale


def current() -> str:
    return _current


def pick(quick, full):
    """The value for the current scale: `quick` by default, `full` under --scale full."""
    return full if _current == "full" else quick


MAX_UNITS = 64  # the bound on a scaling point's units, whatever the machine's CPU count


def parallel_counts(cpus: int) -> tuple[int, ...]:
    """A scaling curve's unit counts on `cpus` CPUs: 2, 4, 8, ... up to the CPUs, the CPU count itself,
    then one oversubscribed point (twice the CPUs), at most MAX_UNITS. The point k = 1 is each round's
    sequential run, which every scaling experiment measures beside its k units.

    >>> parallel_counts(2), parallel_counts(6), parallel_counts(16)
    ((2, 4), (2, 4, 6, 12), (2, 4, 8, 16, 32))
    """
    cpus = max(1, cpus)
    counts, k = [], 2
    while k <= cpus:
        counts.append(k)
        k *= 2
    if cpus > 1 and counts[-1] != cpus:
        counts.append(cpus)
    counts.append(2 * cpus if cpus > 1 else 2)
    return tuple(sorted({min(c, MAX_UNITS) for c in counts}))
