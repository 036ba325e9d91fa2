"""The suite's benchmark clock: perf_counter, or a virtual clock while coroutines are timed.

pytest-benchmark calls its target synchronously and cannot time a coroutine (its issue 66).
To time code *inside* a running event loop, as pyperf's bench_async_func does, the async
harness (harness.aio) measures inside the loop with perf_counter and, for the duration of
its pedantic call, switches this clock to a virtual one that it advances by exactly the
time measured inside. pytest-benchmark then sees the in-loop time and nothing of entering
and leaving the loop. pytest.ini selects this clock with
``--benchmark-timer=harness.timing.clock``; outside harness.aio it is plain perf_counter.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

_virtual: float | None = None


def clock() -> float:
    return time.perf_counter() if _virtual is None else _virtual


@contextmanager
def virtual():
    """Within the block, clock() reads a virtual time that only advance() moves."""
    global _virtual
    if _virtual is not None:
        raise RuntimeError("the virtual clock is already in use")
    _virtual = 0.0
    try:
        yield
    finally:
        _virtual = None


def pedantic_self_timed(benchmark, run, *, rounds: int, units: int = 1, setup=None, warmup_rounds: int = 0):
    """benchmark.pedantic over `run`, a callable that times itself and returns its seconds.

    The benchmark sees run()'s own seconds / `units` (per unit), never what run() spends
    outside its own timer: entering an event loop, starting a child, collecting results.
    `setup` runs untimed before each round, where same-run baselines go. Returns the
    per-unit seconds of every round, warm-up rounds included.
    """
    per_unit: list[float] = []

    def target():
        per_unit.append(run() / units)
        advance(per_unit[-1])

    with virtual():
        benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    return per_unit


def advance(seconds: float) -> None:
    global _virtual
    if _virtual is None:
        raise RuntimeError("advance() needs the virtual clock (harness.timing.virtual())")
    if seconds < 0:
        raise ValueError(f"time cannot go backwards by {seconds!r} s")
    _virtual += seconds


def replay(benchmark, seconds: list[float], units: int = 1) -> None:
    """Give pytest-benchmark the per-round seconds an experiment measured in its own loop.

    pytest-benchmark allows one pedantic call per test and a fixed number of rounds; an
    experiment that samples until its figure is decided (sample_rounds) times each round
    itself and hands the times over here, through the virtual clock, as harness.aio does.
    """
    if not seconds:
        raise ValueError("no rounds to replay")
    rounds = iter(seconds)
    pedantic_self_timed(benchmark, lambda: next(rounds), rounds=len(seconds), units=units)
