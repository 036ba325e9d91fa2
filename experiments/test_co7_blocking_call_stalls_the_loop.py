"""CO7: a blocking call inside a coroutine stalls every coroutine on its loop; a thread fixes it.

What is measured: N tasks on one event loop, each making one blocking call of L seconds
(``time.sleep``, standing in for a blocking client library or disk read), two ways in the
same rounds:
- blocking: ``time.sleep(L)`` directly in the coroutine (the benchmark);
- to_thread: ``await asyncio.to_thread(time.sleep, L)``: the same calls, moved.
Each world is the other's opposite: every check on one is judged on the other's figure by the
same threshold, so "the loop stalls" reads false where the calls moved, and "a thread restores
concurrency" reads false where they did not.
A heartbeat task beside them wakes every HEARTBEAT_TICK_S and records the gaps between its
wake-ups: the loop's lag, i.e. how long *other* coroutines wait to be run.

Why this method: the predictions are exact, because sleep never undershoots. If the call
stalls the loop, the N calls run back to back (wall >= N*L) and the heartbeat misses the
whole stretch (max gap >= N*L); on threads they overlap (wall ~ L) and the heartbeat keeps
ticking (gaps of a tick plus scheduling noise, never a whole L). Each figure is decided by
the 95% interval of its per-round median, sampled until decided (up to MAX_ROUNDS). The
default executor is replaced by one of N threads, started in a warm-up (asyncio's default
has min(32, CPUs + 4) threads, which would make N calls take two waves on 2 CPUs).

The second test reads the stall from the loop's own clock: in debug mode, a callback that
runs longer than ``slow_callback_duration`` is reported ("Executing <Task ...> took X
seconds" on the 'asyncio' logger). That report is a measurement by the loop of how long one
step held it, so it is a support check (the step must be reported at about L), on both
loops; uvloop implements the report too, and if it stopped doing so the check fails rather
than skipping. The to_thread step's longest report is its opposite world (the
step no longer holds the loop); its report count is a figure: OS preemption inside any callback
on a loaded machine can also get reported.

Known traps: pytest runs with warnings as errors and debug mode adds checks of its own
(unclosed transports, never-awaited coroutines), so nothing is left unclosed; debug mode is
switched off and the log handler removed in ``finally``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import aio, stats
from harness.evidence import Opposite
from harness.scale import pick
from harness.stats import sample_rounds
from harness.timing import replay

TASKS = pick(quick=(10,), full=(10, 40))  # N
BLOCK_S = 0.02  # L, one blocking call
HEARTBEAT_TICK_S = 0.001
MAX_ROUNDS = pick(quick=10, full=20)  # sampling stops here even if a figure is still undecided
# Claim: the blocked loop runs the calls back to back, N latencies, and the heartbeat waits the
# whole stretch, N*L; negation: they overlap (about 1 latency) and the heartbeat waits at most one
# call, L. Thresholds: the geometric midpoint, N**SERIAL_EXPONENT latencies and N**SERIAL_EXPONENT*L.
SERIAL_EXPONENT = 0.5
# Claim: on threads the heartbeat keeps ticking (a tick plus scheduling noise); negation: a call
# still holds the loop, so some gap is >= L (sleep never undershoots). Threshold between, nearer
# the negation's hard floor because the claim's side carries OS preemption noise.
THREADED_GAP_FRACTION = 0.75  # x L
DEBUG_BLOCK_S = 0.03  # the debug-mode test's blocking step
SLOW_CALLBACK_S = DEBUG_BLOCK_S / 2  # debug mode reports callbacks longer than this
# Claim: the loop's own clock sees the blocking step hold it for >= the step's length; negation:
# the step returns at once and nothing is reported (0). Threshold: half the step.
REPORTED_FRACTION = 0.5  # x DEBUG_BLOCK_S
DEBUG_MAX_ROUNDS = pick(quick=8, full=15)


async def blocking_step(seconds):
    time.sleep(seconds)  # the mistake under test: a blocking call on the loop's thread


async def threaded_step(seconds):
    await asyncio.to_thread(time.sleep, seconds)


STEPS = {"blocking": blocking_step, "to_thread": threaded_step}


async def with_heartbeat(step, n: int) -> tuple[float, float]:
    """Run n tasks of `step` beside a heartbeat; return (wall, max gap between heartbeats)."""
    beats: list[float] = []

    async def heartbeat():
        while True:
            beats.append(time.perf_counter())
            await asyncio.sleep(HEARTBEAT_TICK_S)

    hb = asyncio.ensure_future(heartbeat())
    await asyncio.sleep(0)  # the heartbeat records its first beat before the work starts
    t0 = time.perf_counter()
    await asyncio.gather(*(step(BLOCK_S) for _ in range(n)))
    wall = time.perf_counter() - t0
    await asyncio.sleep(0)  # ... and gets one chance to beat after it ends
    hb.cancel()
    await asyncio.gather(hb, return_exceptions=True)
    beats.append(time.perf_counter())
    return wall, max(b - a for a, b in zip(beats, beats[1:]))


def thresholds(n: int) -> dict[str, tuple[str, float]]:
    """Each deciding figure's comparison and threshold for N tasks (see the constants above)."""
    serial = n ** SERIAL_EXPONENT
    return {
        "blocking_latencies": (">=", serial),
        "blocking_max_heartbeat_gap": (">=", serial * BLOCK_S),
        "to_thread_latencies": ("<=", serial),
        "to_thread_max_heartbeat_gap": ("<", THREADED_GAP_FRACTION * BLOCK_S),
    }


def split(name: str) -> tuple[str, str]:
    """'to_thread_latencies' -> ('to_thread', 'latencies'): the world and the figure of a check."""
    world = next(w for w in STEPS if name.startswith(f"{w}_"))
    return world, name[len(world) + 1:]


def per_round_figures(rounds) -> dict[str, list[float]]:
    """rounds: [{'blocking': (wall, gap), 'to_thread': (wall, gap)}, ...] -> figure name -> samples."""
    out = {}
    for name in STEPS:
        out[f"{name}_latencies"] = [r[name][0] / BLOCK_S for r in rounds]
        out[f"{name}_max_heartbeat_gap"] = [r[name][1] for r in rounds]
    return out


def stalls(loop, n: int) -> list[dict]:
    """Rounds of n blocking tasks and n to_thread tasks, sampled until every figure is decided."""
    limits = thresholds(n)
    executor = ThreadPoolExecutor(n, thread_name_prefix="co7-to-thread")
    loop.set_default_executor(executor)
    try:
        loop.run_until_complete(with_heartbeat(threaded_step, n))  # starts the n worker threads

        def one_round():
            return {name: loop.run_until_complete(with_heartbeat(step, n)) for name, step in STEPS.items()}

        def done(rounds):
            figures = per_round_figures(rounds)
            # each world's figure is also the other world's opposite, judged by the same threshold
            return all(stats.decided(figures[f"{world}_{split(name)[1]}"], op, t)
                       for name, (op, t) in limits.items() for world in STEPS)

        return sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done)
    finally:
        executor.shutdown(wait=True)


@pytest.mark.claim("CO7")
@pytest.mark.parametrize("n", TASKS, ids=lambda n: f"N{n}")
def test_blocking_call_stalls_every_coroutine_until_moved_to_a_thread(benchmark, evidence, loop, n):
    rounds = stalls(loop, n)
    benchmark.group = "CO7 N tasks making one blocking call each"
    replay(benchmark, [r["blocking"][0] for r in rounds])
    evidence.condition(loop=aio.kind(loop), n=n, block_s=BLOCK_S)
    evidence.figure("tasks", n, "tasks")
    figures = per_round_figures(rounds)
    for name in STEPS:
        evidence.figure(f"{name}_wall", unit="s", samples=[r[name][0] for r in rounds])
    evidence.figure("to_thread_speedup", unit="x", samples=[
        r["blocking"][0] / r["to_thread"][0] for r in rounds])
    whys = {
        "blocking_latencies": f"{n} blocking calls on one loop run one after another",
        "blocking_max_heartbeat_gap": "the heartbeat cannot run until every blocking call has returned",
        "to_thread_latencies": f"in {n} threads the calls overlap",
        "to_thread_max_heartbeat_gap": "the loop keeps running other coroutines while the threads block",
    }
    worlds = {"blocking": "the same calls moved to threads (asyncio.to_thread)",
              "to_thread": "the same calls made on the loop's thread (time.sleep in the coroutine)"}
    for name, (op, threshold) in thresholds(n).items():
        unit = "L" if name.endswith("latencies") else "s"
        world, figure = split(name)
        other, = set(STEPS) - {world}
        evidence.support(name, op=op, threshold=threshold, unit=unit, why=whys[name], samples=figures[name],
                         opposite=Opposite(worlds[world], samples=figures[f"{other}_{figure}"]))
    evidence.settle(benchmark)


class _SlowCallbackRecords(logging.Handler):
    """Collects asyncio debug mode's "Executing <handle> took X seconds" warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.took: list[float] = []

    def emit(self, record):
        if isinstance(record.msg, str) and record.msg.startswith("Executing") and " took " in record.msg:
            self.took.append(float(record.args[-1]))


async def one_task(step):
    await asyncio.gather(step(DEBUG_BLOCK_S))


def debug_reports(loop) -> list[dict[str, list[float]]]:
    """Rounds of one blocking and one to_thread task in debug mode: the durations reported for each."""
    logger = logging.getLogger("asyncio")
    handler, level = _SlowCallbackRecords(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_S
    try:
        loop.run_until_complete(one_task(threaded_step))  # starts the default executor's thread
        handler.took.clear()

        def one_round():
            reports = {}
            for name, step in STEPS.items():
                t0 = time.perf_counter()
                loop.run_until_complete(one_task(step))
                reports[name] = list(handler.took)
                reports[f"{name}_wall"] = time.perf_counter() - t0
                handler.took.clear()
            return reports

        def done(rounds):
            return all(stats.decided(longest(rounds, name), ">=", REPORTED_FRACTION) for name in STEPS)

        return sample_rounds(one_round, max_rounds=DEBUG_MAX_ROUNDS, done=done)
    finally:
        loop.set_debug(False)
        logger.removeHandler(handler)
        logger.setLevel(level)


def longest(rounds, name: str) -> list[float]:
    """Per round, the longest stall the loop reported for `name`'s step, in steps (0 if none)."""
    return [max(r[name], default=0.0) / DEBUG_BLOCK_S for r in rounds]


@pytest.mark.claim("CO7")
def test_debug_mode_names_the_blocking_callback(benchmark, evidence, loop):
    rounds = debug_reports(loop)
    benchmark.group = "CO7 debug mode: one blocking task"
    replay(benchmark, [r["blocking_wall"] for r in rounds])
    kind = aio.kind(loop)
    evidence.condition(loop=kind, slow_callback_duration_s=SLOW_CALLBACK_S, block_s=DEBUG_BLOCK_S)
    counts = [len(r["blocking"]) for r in rounds]
    evidence.figure("slow_reports_per_blocking_call", unit="reports", samples=counts)
    evidence.figure("slow_reports_per_to_thread_call", unit="reports", samples=[len(r["to_thread"]) for r in rounds])
    evidence.note(f"{kind} debug mode logged 'Executing <Task ...> took X seconds' on the 'asyncio' logger "
                  f"in {sum(c > 0 for c in counts)} of {len(counts)} rounds of one blocking call")
    evidence.support("blocking_longest_report", op=">=", threshold=REPORTED_FRACTION, unit="steps",
                     why="the loop's own clock saw the blocking step hold it for the whole step",
                     samples=longest(rounds, "blocking"),
                     opposite=Opposite("the same step moved to a thread", samples=longest(rounds, "to_thread")))
    evidence.settle(benchmark)
