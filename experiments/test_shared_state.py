"""CO3: coroutines run on one thread, so the state they share needs no lock.

What is measured: TASKS tasks on one event loop (asyncio and uvloop, via the `loop`
fixture) each add 1 to a shared counter INCREMENTS times, as a read-modify-write
(`value = c.value; ...; c.value = value + 1`). Lost updates = expected total - final
count. Three bodies:
- no await inside the read-modify-write (each task yields with `await asyncio.sleep(0)`
  *between* increments, so the tasks do interleave, counted as writer hand-overs);
- an `await asyncio.sleep(0)` between the read and the write;
- the same, inside `async with asyncio.Lock()`, timed against the unlocked body in the
  same rounds: the lock's cost per increment; and, for the price of a lock where none is
  needed, an uncontended lock around the no-await body against the bare body.
The contrast: THREADS threads run the same read-modify-write with `time.sleep(0)` between
read and write (it releases the GIL, as the await yields the loop) and a switch interval
of SWITCH_INTERVAL_S, so the interleaving is forced rather than hoped for; the plain
`c.value += 1` in threads and the same body under threading.Lock are recorded as figures.

Why this method: a lost update needs a switch between a read and its write. On one loop a
switch can happen only at an await, so the count is exact exactly when no await sits
inside; threads can be switched anywhere the interpreter lets go of the GIL.

How it is decided: no await inside -> lost == 0 with hand-overs > 0 (support); await inside
-> lost > 0 (caveat: the claim holds only for critical sections without an await);
asyncio.Lock -> lost == 0 (support), its cost a figure; unlocked threads -> lost > 0
(support: the premise that threads, unlike one loop, need the lock).

Known traps: the benchmark clock reads the loop's own time per increment (harness.timing's
virtual clock), not the cost of entering the loop; sys.setswitchinterval is process-wide
and is restored in a finally block.
"""
from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

from harness.scale import pick
from harness.timing import pedantic_self_timed

TASKS = pick(quick=50, full=100)
INCREMENTS = pick(quick=100, full=500)  # per task
ROUNDS = pick(quick=5, full=10)
THREADS = 4
THREAD_INCREMENTS = pick(quick=500, full=2_000)  # per thread, forced interleaving
PLAIN_THREAD_INCREMENTS = pick(quick=50_000, full=200_000)  # per thread, unforced `+=`
THREAD_ROUNDS = pick(quick=3, full=10)
SWITCH_INTERVAL_S = 1e-6  # default 5 ms; tiny so a waiting thread asks for the GIL at once


class Counter:
    """A shared count that also counts hand-overs: writes by a different worker than the last."""

    def __init__(self):
        self.value = 0
        self.last_writer = None
        self.handovers = 0

    def wrote(self, who) -> None:
        if who != self.last_writer:
            self.handovers += 1
            self.last_writer = who


async def no_await_inside(c: Counter, me: int, _lock) -> None:
    for _ in range(INCREMENTS):
        value = c.value
        c.value = value + 1
        c.wrote(me)
        await asyncio.sleep(0)  # outside the read-modify-write: lets the other tasks run


async def await_inside(c: Counter, me: int, _lock) -> None:
    for _ in range(INCREMENTS):
        value = c.value
        await asyncio.sleep(0)  # another task may run between this read and the write
        c.value = value + 1
        c.wrote(me)


async def await_inside_locked(c: Counter, me: int, lock: asyncio.Lock) -> None:
    for _ in range(INCREMENTS):
        async with lock:
            value = c.value
            await asyncio.sleep(0)
            c.value = value + 1
            c.wrote(me)


async def no_await_inside_locked(c: Counter, me: int, lock: asyncio.Lock) -> None:
    for _ in range(INCREMENTS):
        async with lock:  # uncontended: nobody else can hold it, nothing awaits inside
            value = c.value
            c.value = value + 1
            c.wrote(me)
        await asyncio.sleep(0)


async def run_tasks(body) -> tuple[float, Counter]:
    """Seconds inside the loop for TASKS tasks running `body`, and the counter they shared."""
    counter, lock = Counter(), asyncio.Lock()
    t0 = time.perf_counter()
    await asyncio.gather(*(body(counter, me, lock) for me in range(TASKS)))
    return time.perf_counter() - t0, counter


def lost(counter: Counter, expected: int) -> int:
    return expected - counter.value


def bench_counter(benchmark, loop, body, baselines=None):
    """Time `body` per increment on `loop` (pedantic, virtual clock); `baselines` run in setup.

    Returns (body samples, {name: baseline samples}), samples being (seconds per increment, Counter).
    """
    total = TASKS * INCREMENTS
    baselines = baselines or {}
    samples, base = [], {name: [] for name in baselines}

    def target():
        seconds, counter = loop.run_until_complete(run_tasks(body))
        samples.append((seconds / total, counter))
        return seconds

    def setup():
        for name, other in baselines.items():
            seconds, counter = loop.run_until_complete(run_tasks(other))
            base[name].append((seconds / total, counter))

    pedantic_self_timed(benchmark, target, units=total, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    return samples[-ROUNDS:], {name: got[-ROUNDS:] for name, got in base.items()}


def record_counts(evidence, samples, loop_name: str) -> tuple[int, int]:
    total = TASKS * INCREMENTS
    evidence.condition(event_loop=loop_name, tasks=TASKS, increments_per_task=INCREMENTS)
    evidence.figure("expected_count", total, "increments")
    losses = [lost(c, total) for _, c in samples]
    evidence.figure("lost_updates", unit="increments", samples=losses)  # per round
    evidence.figure("max_lost_updates", max(losses), "increments")
    evidence.figure("min_lost_updates", min(losses), "increments")
    evidence.figure("handovers", unit="hand-overs", samples=[c.handovers for _, c in samples])
    evidence.figure("time_per_increment", unit="us", samples=[s * 1e6 for s, _ in samples])
    return min(losses), max(losses)


def loop_name(loop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


@pytest.mark.claim("CO3")
def test_counter_without_await_inside_update_is_exact(benchmark, evidence, loop):
    benchmark.group = "CO3 shared counter on one loop, per increment"
    samples, _ = bench_counter(benchmark, loop, no_await_inside)
    _, worst = record_counts(evidence, samples, loop_name(loop))
    evidence.support("max_lost_updates", worst, "==", 0, "increments",
                     why="no switch can happen between a read and its write without an await")
    evidence.support("handovers", min(c.handovers for _, c in samples), ">", 0, "hand-overs",
                     why="the tasks did interleave between increments, so exactness is not trivial")
    evidence.settle(benchmark, expect="holds")


@pytest.mark.claim("CO3")
def test_await_inside_critical_section_loses_updates(benchmark, evidence, loop):
    benchmark.group = "CO3 shared counter on one loop, per increment"
    samples, _ = bench_counter(benchmark, loop, await_inside)
    fewest, _ = record_counts(evidence, samples, loop_name(loop))
    evidence.figure("min_lost_fraction", fewest / (TASKS * INCREMENTS), "of increments")
    evidence.caveat("min_lost_updates", fewest, ">", 0, "increments",
                    why="an await between read and write lets other tasks write in between")
    evidence.settle(benchmark, expect="holds-with-caveat")


@pytest.mark.claim("CO3")
def test_asyncio_lock_restores_exact_count_at_a_cost(benchmark, evidence, loop):
    benchmark.group = "CO3 shared counter on one loop, per increment"
    baselines = {"unlocked": await_inside, "uncontended": no_await_inside_locked, "no_lock_no_await": no_await_inside}
    samples, base = bench_counter(benchmark, loop, await_inside_locked, baselines)
    _, worst = record_counts(evidence, samples, loop_name(loop))
    unlocked = [s for s, _ in base["unlocked"]]
    evidence.figure("unlocked_time_per_increment", unit="us", samples=[s * 1e6 for s in unlocked])
    evidence.figure("lock_cost_ratio", unit="x", samples=[s / u for (s, _), u in zip(samples, unlocked)])
    evidence.figure("lock_overhead_per_increment", unit="us",
                    samples=[(s - u) * 1e6 for (s, _), u in zip(samples, unlocked)])
    # The price of a lock where none is needed (no await inside, so never contended).
    pairs = list(zip(base["uncontended"], base["no_lock_no_await"]))
    evidence.figure("uncontended_lock_overhead_per_increment", unit="us",
                    samples=[(lk - free) * 1e6 for (lk, _), (free, _) in pairs])
    evidence.figure("uncontended_lock_cost_ratio", unit="x", samples=[lk / free for (lk, _), (free, _) in pairs])
    evidence.figure("uncontended_lost_updates", unit="increments",
                    samples=[lost(c, TASKS * INCREMENTS) for _, c in base["uncontended"]])
    evidence.support("max_lost_updates", worst, "==", 0, "increments",
                     why="asyncio.Lock keeps other tasks out across the await")
    evidence.settle(benchmark, expect="holds")


def run_threads(body, per_thread: int) -> Counter:
    counter, lock = Counter(), threading.Lock()
    threads = [threading.Thread(target=body, args=(counter, me, lock, per_thread)) for me in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counter


def thread_sleep_inside(c: Counter, me: int, _lock, n: int) -> None:
    for _ in range(n):
        value = c.value
        time.sleep(0)  # releases the GIL between read and write, as an await yields the loop
        c.value = value + 1
        c.wrote(me)


def thread_sleep_inside_locked(c: Counter, me: int, lock: threading.Lock, n: int) -> None:
    for _ in range(n):
        with lock:
            value = c.value
            time.sleep(0)
            c.value = value + 1
            c.wrote(me)


def thread_plain_increment(c: Counter, _me: int, _lock, n: int) -> None:
    for _ in range(n):
        c.value += 1


@pytest.mark.claim("CO3")
def test_threads_lose_updates_without_a_lock(benchmark, evidence):
    """Same read-modify-write in threads; the GIL can pass between read and write."""
    forced, locked, plain = [], [], []

    def setup():
        locked.append(run_threads(thread_sleep_inside_locked, THREAD_INCREMENTS))
        plain.append(run_threads(thread_plain_increment, PLAIN_THREAD_INCREMENTS))

    def target():
        forced.append(run_threads(thread_sleep_inside, THREAD_INCREMENTS))

    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        benchmark.group = "CO3 shared counter in threads, per run"
        benchmark.pedantic(target, setup=setup, rounds=THREAD_ROUNDS)
    finally:
        sys.setswitchinterval(previous)

    total, plain_total = THREADS * THREAD_INCREMENTS, THREADS * PLAIN_THREAD_INCREMENTS
    evidence.condition(threads=THREADS, increments_per_thread=THREAD_INCREMENTS, switch_interval_s=SWITCH_INTERVAL_S)
    losses = [lost(c, total) for c in forced]
    evidence.figure("expected_count", total, "increments")
    evidence.figure("lost_updates", unit="increments", samples=losses)  # per round
    evidence.figure("min_lost_updates", min(losses), "increments")
    evidence.figure("min_lost_fraction", min(losses) / total, "of increments")
    evidence.figure("handovers", unit="hand-overs", samples=[c.handovers for c in forced])
    evidence.figure("locked_lost_updates", unit="increments", samples=[lost(c, total) for c in locked])
    evidence.figure("plain_increment_lost_updates", unit="increments",
                    samples=[lost(c, plain_total) for c in plain])
    evidence.note(f"`c.value += 1` without a forced switch, {THREADS} threads x {PLAIN_THREAD_INCREMENTS}: "
                  f"lost {[lost(c, plain_total) for c in plain]}. Whether an unforced += races depends on "
                  "where the interpreter offers the GIL (an implementation detail), so it is a figure, not a check")
    evidence.support("min_lost_updates", min(losses), ">", 0, "increments",
                     why="threads can be switched between read and write: unlike one loop, they need a lock")
    evidence.settle(benchmark, expect="holds")
