"""The suite's benchmark clock: perf_counter minus time the harness asks to exclude.

pytest-benchmark calls its target synchronously and cannot time a coroutine. To time code
*inside* a running event loop (as pyperf's bench_async_func does), the async harness
measures inside the loop and tells this clock to exclude everything else the synchronous
target spent (entering and leaving the loop). pytest.ini selects it with
``--benchmark-timer=harness.timing.clock``; for every other benchmark it is plain
perf_counter, since nothing is excluded.

The clock never runs backwards: the excluded part of a call is never more than its wall time.
"""
from __future__ import annotations

import time

_excluded = 0.0


def clock() -> float:
    return time.perf_counter() - _excluded


def exclude(seconds: float) -> None:
    """Remove `seconds` of the current call from what the benchmark sees."""
    global _excluded
    if seconds < 0:
        raise ValueError(f"cannot exclude negative time {seconds!r}")
    _excluded += seconds
