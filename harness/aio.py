"""Event loops (asyncio, uvloop) and the way this suite times coroutines.

pytest-benchmark cannot await (its issue 66). ``bench_async`` does what pyperf's
bench_async_func does: the loop is made once, outside the timer; inside the loop a batch of
awaits is timed with perf_counter; the benchmark sees the mean time per await, through
harness.timing's virtual clock, so entering and leaving the loop (run_until_complete, about
20 µs) never counts.
"""
from __future__ import annotations

import asyncio
import time

from harness import timing

LOOPS = ("asyncio", "uvloop")


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    raise ValueError(f"unknown event loop {kind!r}; choose one of {', '.join(LOOPS)}")


def kind(loop: asyncio.AbstractEventLoop) -> str:
    """The loop's kind as conditions and figures spell it: 'asyncio' or 'uvloop'."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left, shut down async generators and the default executor, close."""
    if loop.is_closed():
        return
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


def bench_async(benchmark, loop, coro_fn, *args, rounds: int, batch: int = 1, warmup_rounds: int = 1, setup=None):
    """Benchmark ``await coro_fn(*args)`` on `loop`: each round times `batch` awaits in the loop.

    The benchmark's statistics are seconds per await (round time / batch). `setup`, as in
    pytest-benchmark's pedantic, runs untimed before each round (same-run baselines go there).
    Returns the result of the last await.
    """
    last = []

    async def timed_batch() -> float:
        t0 = time.perf_counter()
        for _ in range(batch):
            result = await coro_fn(*args)
        elapsed = time.perf_counter() - t0
        last[:] = [result]
        return elapsed

    timing.pedantic_self_timed(
        benchmark, lambda: loop.run_until_complete(timed_batch()),
        rounds=rounds, units=batch, setup=setup, warmup_rounds=warmup_rounds,
    )
    return last[0] if last else None
