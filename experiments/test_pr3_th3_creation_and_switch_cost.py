"""PR3, TH3: what it costs to create a process, a thread or a task, and to switch between two.

PR3 says processes are costly to create *and* costly to switch between; TH3 says threads are
cheap to run compared with processes. Both are claims about the same two ratios, read from
either side: process / thread creation, and process / thread switch.

What is measured:
- Creation: create, start and finish one empty unit (a process by each start method, a
  thread, an asyncio task), per unit of a batch. Each row's reference units are measured in
  the same round, so every round yields same-round ratios (process / thread, process / task).
- Switching: the ping-pong of harness.pingpong between two processes over a pipe (the echo
  process forked; as figures also started by forkserver and by spawn), two threads
  over the same pipe and over queue.SimpleQueue, and two tasks, in the same rounds, on one CPU;
  and, in the same rounds, each channel alone (one unit sending into it and receiving from it
  itself: no switch). A switch net of its channel is its ping-pong minus its channel alone, and
  the ratio of net costs decides: with the channel included, a pipe's own cost dominates both
  sides and pulls any ratio towards 1.

How it is decided: "costly" (and "cheap compared with") predicts a cost of another order, the
negation a comparable one (about 1x); the threshold sits between the two, and the interval of
the median of the same-round ratios decides, rounds continuing until it clears, up to a bound.
The switching checks are support, not caveats: a process switch that costs what a thread
switch costs refutes "costly to switch" (PR3) and "threads are cheap compared with processes"
for switching (TH3), and the experiment can measure either outcome.

Known traps: creation under pytest is costlier than in a bare script. fork copies a bigger
process (page tables of pytest's heap). spawn children re-run the main module, which under
pytest is pytest's console script. So do forkserver children on Python 3.11: its server asks
spawn for the key 'main_path', which get_preparation_data no longer provides (it says
'init_main_from_path'), so __main__ is never preloaded, and forkserver costs about as much as
spawn. Empty units are timed, so the figures are the fixed cost of a unit, not of any work.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time

import pytest

from harness import aio, stats
from harness.pingpong import CHANNEL_OF, START_METHOD, net, net_ratios, ratios, switch_rounds
from harness.scale import pick
from harness.stats import sample_rounds
from harness.thresholds import ORDER_OF_MAGNITUDE
from harness.timing import replay
from harness.workloads import spin

# Units per round: enough that each round lasts a few ms at least (a spawned child takes 0.1 s or so).
CREATION_BATCH = {
    "process-fork": pick(quick=4, full=10),
    "process-forkserver": pick(quick=2, full=5),
    "process-spawn": 1,
    "thread": pick(quick=50, full=200),
    "coroutine": pick(quick=500, full=2000),
}
MAX_ROUNDS = pick(quick=20, full=30)  # the bound on sampling while a ratio's interval straddles its threshold
ROUND_TRIPS = pick(quick=500, full=3000)  # per switching world per round (2 switches each)
# Claim ("costly", "cheap compared with"): a cost of another order, 10x or more; negation: a
# comparable cost, about 1x. Rule: harness.thresholds.ORDER_OF_MAGNITUDE (their geometric midpoint).
MIN_COSTLY_RATIO = ORDER_OF_MAGNITUDE


# --- creation: create + start + finish n empty units, timed by the creator itself -------------
def _create_processes(method: str, n: int) -> float:
    ctx = multiprocessing.get_context(method)
    t0 = time.perf_counter()
    for i in range(n):
        p = ctx.Process(target=spin, args=(0,))
        p.start()
        p.join()
        if p.exitcode != 0:  # every child: one that died at once would pass for a cheap creation
            raise RuntimeError(f"{method} child {i + 1} of {n} exited with {p.exitcode}")
    return time.perf_counter() - t0


def _create_threads(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        t = threading.Thread(target=spin, args=(0,))
        t.start()
        t.join()
    return time.perf_counter() - t0


async def _nothing() -> None:
    pass


async def _create_tasks(n: int) -> float:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    for _ in range(n):
        await loop.create_task(_nothing())
    return time.perf_counter() - t0


# unit -> factory(loop) of a function n -> seconds that creates, starts and finishes n units.
CREATORS = {
    "process-fork": lambda loop: lambda n: _create_processes("fork", n),
    "process-forkserver": lambda loop: lambda n: _create_processes("forkserver", n),
    "process-spawn": lambda loop: lambda n: _create_processes("spawn", n),
    "thread": lambda loop: _create_threads,
    "coroutine": lambda loop: lambda n: loop.run_until_complete(_create_tasks(n)),
}
# Each row's deciding ratio (costlier, cheaper); threads are set against fork, the cheapest start
# method, so that TH3's ratio is the conservative one.
DECIDING = {
    "process-fork": ("process-fork", "thread"),
    "process-forkserver": ("process-forkserver", "thread"),
    "process-spawn": ("process-spawn", "thread"),
    "thread": ("process-fork", "thread"),
    "coroutine": ("process-fork", "coroutine"),
}
CHECK_NAMES = {"thread": "process_over_thread", "coroutine": "process_over_task"}
EXTRA_FIGURES = {"coroutine": [("thread", "coroutine")]}
CREATION_UNITS = [pytest.param(u, marks=pytest.mark.claim("TH3" if u == "thread" else "PR3"), id=u) for u in DECIDING]


def creation_rounds(unit: str) -> dict[str, list[float]]:
    """Per-unit creation seconds of `unit` and the units it is compared with, one sample per round."""
    units = list(dict.fromkeys([*DECIDING[unit], *(u for pair in EXTRA_FIGURES.get(unit, []) for u in pair)]))
    num, den = DECIDING[unit]  # the ratio that decides, and so ends the sampling
    loop = aio.new_loop("asyncio")
    try:
        make = {u: CREATORS[u](loop) for u in units}
        for fn in make.values():
            fn(1)  # warm up: the forkserver's server, the first thread, the loop
        rounds = sample_rounds(
            lambda: {u: make[u](CREATION_BATCH[u]) / CREATION_BATCH[u] for u in units},
            max_rounds=MAX_ROUNDS,
            done=lambda rs: stats.decided([r[num] / r[den] for r in rs], ">=", MIN_COSTLY_RATIO))
    finally:
        aio.close_loop(loop)
    return {u: [r[u] for r in rounds] for u in units}


@pytest.mark.parametrize("unit", CREATION_UNITS)
def test_creation_costs_more_for_processes_than_threads_than_tasks(benchmark, evidence, unit):
    samples = creation_rounds(unit)
    benchmark.group = "PR3/TH3 creation cost per unit (create + start + finish)"
    replay(benchmark, samples[unit])
    evidence.condition(unit=unit, batch=CREATION_BATCH[unit])
    if unit in ("process-forkserver", "process-spawn"):
        evidence.note(f"{unit} children re-run the main module (pytest's console script) before the target; on "
                      "Python 3.11 forkserver does too, as its server never preloads __main__ (see module docstring)")
    for u, values in samples.items():
        evidence.figure(f"{u}_create", unit="s", samples=values)
    for num, den in EXTRA_FIGURES.get(unit, []):
        evidence.figure(f"{num}_over_{den}", unit="x", samples=ratios(samples, num, den))
    num, den = DECIDING[unit]
    evidence.support(CHECK_NAMES[den], op=">=", threshold=MIN_COSTLY_RATIO, unit="x", samples=ratios(samples, num, den),
                     why=f"{num} vs {den} creation in the same rounds")
    evidence.settle(benchmark)


# --- switching -----------------------------------------------------------------------------------
def switching(benchmark, timed: str, worlds: tuple[str, ...], loop, decide_on: str) -> dict[str, list[float]]:
    """Rounds of every world until process / `decide_on` is decided; the benchmark sees `timed`."""
    def done(rs):  # the ratio and its control (the thread's net switch cost above 0) both decided
        net = {w: [r[w] - r[CHANNEL_OF[w]] for r in rs] for w in ("process-pipe", decide_on)}
        return (stats.decided(net[decide_on], ">", 0) and
                stats.decided([p / t for p, t in zip(net["process-pipe"], net[decide_on])], ">=", MIN_COSTLY_RATIO))

    samples = switch_rounds(worlds, loop, round_trips=ROUND_TRIPS,
                            sample=lambda one_round: sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done))
    benchmark.group = "PR3/TH3/CO4 switch cost (ping-pong, one CPU)"
    replay(benchmark, samples[timed])
    return samples


def record_switches(evidence, samples, world: str) -> None:
    evidence.condition(world=world, start_method=START_METHOD, round_trips=ROUND_TRIPS, cpus_pinned=1)
    for w, values in samples.items():
        if w.startswith("channel-"):
            evidence.figure(f"{w}_alone_per_message", unit="s", samples=values)
            continue
        evidence.figure(f"{w}_switch_incl_channel", unit="s", samples=values)
        if w in CHANNEL_OF:
            evidence.figure(f"{w}_switch_net_of_channel", unit="s", samples=net(samples, w))
    evidence.note("per switch = round trip / 2, both partners pinned to one CPU: a switch is that CPU going from one "
                  "unit to the other; net of channel = minus the same channel used by one unit alone, same rounds")


def net_control(evidence, samples, den: str) -> None:
    """The thread switch must cost more than its channel alone, or a net ratio means nothing."""
    evidence.control(f"{den}_switch_net_of_channel_positive", op=">", threshold=0, unit="s",
                     samples=net(samples, den),
                     why=f"the {den} ping-pong cost no more than its channel alone: no switch cost is left to compare")


@pytest.mark.claim("PR3")
def test_process_switch_costs_about_as_much_as_thread_switch(benchmark, evidence):
    loop = aio.new_loop("asyncio")
    try:
        # The echo process by each other start method too (figures: a process's switch per start method).
        methods = multiprocessing.get_all_start_methods()
        others = tuple(f"process-pipe-{m}" for m in ("forkserver", "spawn") if m in methods)
        worlds = ("process-pipe", *others, "thread-pipe", "thread-queue", "coroutine-queue", "channel-pipe",
                  "channel-queue")
        samples = switching(benchmark, "process-pipe", worlds, loop, "thread-pipe")
    finally:
        aio.close_loop(loop)
    record_switches(evidence, samples, "process-pipe")
    evidence.figure("process_over_thread_switch_incl_channel", unit="x",
                    samples=ratios(samples, "process-pipe", "thread-pipe"))
    evidence.figure("process_over_thread_queue_net_of_channel", unit="x",
                    samples=net_ratios(samples, "process-pipe", "thread-queue"))
    evidence.figure("process_over_task", unit="x", samples=ratios(samples, "process-pipe", "coroutine-queue"))
    net_control(evidence, samples, "thread-pipe")
    evidence.support(
        "process_over_thread_switch_net_of_channel", op=">=", threshold=MIN_COSTLY_RATIO, unit="x",
        samples=net_ratios(samples, "process-pipe", "thread-pipe"),
        why="'costly to switch': the pipe ping-pong between two processes vs two threads, each net of the pipe "
            "used alone, same rounds",
    )
    evidence.settle(benchmark)


@pytest.mark.claim("TH3")
@pytest.mark.parametrize("channel", ["pipe", "queue"])
def test_thread_switch_costs_about_as_much_as_process_switch(benchmark, evidence, channel):
    world = f"thread-{channel}"
    worlds = tuple(dict.fromkeys(("process-pipe", world, CHANNEL_OF["process-pipe"], CHANNEL_OF[world])))
    samples = switching(benchmark, world, worlds, None, world)
    record_switches(evidence, samples, world)
    evidence.figure("process_over_thread_switch_incl_channel", unit="x", samples=ratios(samples, "process-pipe", world))
    net_control(evidence, samples, world)
    evidence.support(
        "process_over_thread_switch_net_of_channel", op=">=", threshold=MIN_COSTLY_RATIO, unit="x",
        samples=net_ratios(samples, "process-pipe", world),
        why="'cheap compared with processes': a thread switch vs a process switch, each net of its channel used "
            "alone, same rounds",
    )
    evidence.settle(benchmark)
