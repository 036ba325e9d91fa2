"""CO3: coroutines run on one thread, so the state they share needs no lock.

What is measured: TASKS tasks on one event loop (asyncio and uvloop, via the `loop`
fixture) each add 1 to a shared counter INCREMENTS times, as a read-modify-write
(`value = c.value; ...; c.value = value + 1`). Lost updates = expected total - final
count. Four bodies, side by side below, differing in one line each:
- no await inside the read-modify-write (each task yields with `await asyncio.sleep(0)`
  *between* increments, so the tasks do interleave, counted as writer hand-overs);
- an `await asyncio.sleep(0)` between the read and the write: the opposite world, and the caveat;
- the same, inside `async with asyncio.Lock()`, timed against the unlocked body in the
  same rounds: the lock's cost per increment;
- an uncontended lock around the no-await body, against the bare body: the price of a lock
  where none is needed.

Why this method: a lost update needs a switch between a read and its write. On one loop a
switch can happen only at an await, so the count is exact exactly when no await sits
inside. If coroutines could be switched anywhere (as threads can, TH1), the no-await body
would lose updates too.

How it is decided: no await inside -> lost == 0 (a lost update is a counterexample, counted
over all rounds), with the await-inside body run in the same rounds as its opposite world,
judged by the same check: if it loses nothing too, the check could not have failed and the
part is not measured (not discriminating here). Await inside -> the lost fraction per round,
by its interval, is the caveat (the claim holds only for critical sections without an await).
asyncio.Lock -> lost == 0 again.

Known traps: the benchmark clock reads the loop's own time per increment (harness.timing's
virtual clock), not the cost of entering the loop. That threads lose updates with the same
body is TH1's measurement (test_th1_threads_share_memory.py), not repeated here.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from harness import aio
from harness.evidence import Opposite
from harness.scale import pick
from harness.timing import pedantic_self_timed

TASKS = pick(quick=50, full=100)
INCREMENTS = pick(quick=100, full=500)  # per task
ROUNDS = pick(quick=6, full=10)
# Lost fraction with an await inside. Round-robin tasks that all read before any writes
# predict (TASKS - 1) / TASKS lost; an await that could not be switched at would lose none.
MIN_LOST_FRACTION_AWAIT_INSIDE = 0.5


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


def lost(counter: Counter) -> int:
    return TASKS * INCREMENTS - counter.value


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

    benchmark.group = "CO3 shared counter on one loop, per increment"
    pedantic_self_timed(benchmark, target, units=total, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    return samples[-ROUNDS:], {name: got[-ROUNDS:] for name, got in base.items()}


def record_counts(evidence, samples, loop) -> None:
    evidence.condition(loop=aio.kind(loop), tasks=TASKS, increments_per_task=INCREMENTS)
    evidence.figure("expected_count", TASKS * INCREMENTS, "increments")
    evidence.figure("lost_updates", unit="increments", samples=[lost(c) for _, c in samples])
    evidence.figure("handovers", unit="hand-overs", samples=[c.handovers for _, c in samples])
    evidence.figure("time_per_increment", unit="s", samples=[s for s, _ in samples])


def opposite(evidence, control) -> Opposite:
    """The await-inside body of the same rounds: the world where switches land inside the
    read-modify-write, so the same check must count lost updates there (else it could not fail)."""
    losses = [lost(c) for _, c in control]
    evidence.figure("opposite_lost_updates_await_inside", unit="increments", samples=losses)
    return Opposite("the same tasks with an await between the read and the write, unlocked", value=sum(losses))


@pytest.mark.claim("CO3")
def test_counter_without_await_inside_update_is_exact(benchmark, evidence, loop):
    samples, base = bench_counter(benchmark, loop, no_await_inside, {"await_inside": await_inside})
    record_counts(evidence, samples, loop)
    # No switch without an await predicts 0 lost; coroutines switched anywhere (as threads
    # are) predict losses. One lost update is a counterexample: the threshold is 0.
    evidence.support("lost_updates_total", value=sum(lost(c) for _, c in samples), op="==", threshold=0,
                     unit="increments",
                     why="no switch can happen between a read and its write without an await",
                     opposite=opposite(evidence, base["await_inside"]))
    evidence.settle(benchmark)


@pytest.mark.claim("CO3")
def test_await_inside_critical_section_loses_updates(benchmark, evidence, loop):
    samples, _ = bench_counter(benchmark, loop, await_inside)
    record_counts(evidence, samples, loop)
    evidence.caveat("lost_fraction", op=">=", threshold=MIN_LOST_FRACTION_AWAIT_INSIDE, unit="of increments",
                    samples=[lost(c) / (TASKS * INCREMENTS) for _, c in samples],
                    why="an await between read and write lets other tasks write in between")
    evidence.settle(benchmark)


@pytest.mark.claim("CO3")
def test_asyncio_lock_restores_exact_count_at_a_cost(benchmark, evidence, loop):
    baselines = {"unlocked": await_inside, "uncontended": no_await_inside_locked, "no_lock_no_await": no_await_inside}
    samples, base = bench_counter(benchmark, loop, await_inside_locked, baselines)
    record_counts(evidence, samples, loop)
    world = opposite(evidence, base["unlocked"])
    unlocked = [s for s, _ in base["unlocked"]]
    evidence.figure("unlocked_time_per_increment", unit="s", samples=unlocked)
    evidence.figure("lock_cost_ratio", unit="x", samples=[s / u for (s, _), u in zip(samples, unlocked)])
    evidence.figure("lock_overhead_per_increment", unit="s", samples=[s - u for (s, _), u in zip(samples, unlocked)])
    # The price of a lock where none is needed (no await inside, so never contended).
    pairs = list(zip(base["uncontended"], base["no_lock_no_await"]))
    evidence.figure("uncontended_lock_overhead_per_increment", unit="s",
                    samples=[lk - free for (lk, _), (free, _) in pairs])
    evidence.figure("uncontended_lock_cost_ratio", unit="x", samples=[lk / free for (lk, _), (free, _) in pairs])
    evidence.figure("uncontended_lost_updates", unit="increments", samples=[lost(c) for _, c in base["uncontended"]])
    # Switches only at awaits, which the lock guards, predict 0 lost; a loop that could switch
    # elsewhere would break asyncio.Lock's plain check-and-set. One lost update refutes.
    evidence.support("lost_updates_total", value=sum(lost(c) for _, c in samples), op="==", threshold=0,
                     unit="increments",
                     why="asyncio.Lock keeps other tasks out across the await", opposite=world)
    evidence.settle(benchmark)
