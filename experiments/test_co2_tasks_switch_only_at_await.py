"""CO2: the program decides where coroutines switch, which avoids needless context switches and races.

What is measured:
- where switches happen: a task computes in small steps for SEGMENT_S while READY_TASKS
  other tasks are ready and counting; a step in which their counter moved is an
  interleaving. In the same rounds: a control, the same task awaiting in each step (the
  others were ready and do run at each await), and the opposite world, a thread running the
  same steps for SEGMENT_S beside a busy thread (the interpreter switches it out without
  asking, every switch interval), judged by the same check.
- OS context switches: WAITS concurrent waits of WAIT_S, once as tasks awaiting asyncio.sleep
  in one loop thread, once as sleeps in a pre-started pool of WAITS threads, interleaved
  round by round. Voluntary and involuntary switches come from getrusage(RUSAGE_SELF), which
  sums all threads of the process, exited ones included (/proc/self/status and psutil's
  num_ctx_switches count the main thread only).

Why this method: if the loop could take the CPU from a task as the interpreter takes it from
a thread, the computing task would see the others run about once per switch interval, as the
thread does. And if each waiting coroutine cost the kernel a switch as each blocked thread
does, the loop would show about as many switches per wait as the threads.

How it is decided: an interleaving without an await is a counterexample (any one refutes);
when the control or the thread shows no interleaving, preemption could not have been seen and
the part is not measured. Switches per wait and the thread/loop ratio of the same rounds are decided by
their intervals.

Known traps: the tasks, threads and pool are made before any count or clock starts; the pool
is warmed with WAITS waits first, so thread creation is not counted. Other processes on the
machine add involuntary switches to both variants alike.
"""
from __future__ import annotations

import asyncio
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from harness import aio
from harness.aio import bench_async
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux
from harness.workloads import spin

ROUNDS = pick(quick=6, full=20)
READY_TASKS = 50  # tasks ready to run while the worker computes
SEGMENT_S = 0.03  # how long the worker computes without awaiting: several GIL switch intervals
STEP_WORK = 1_000  # spin() iterations per step: tens of microseconds
AWAITED_STEPS = pick(quick=100, full=500)  # the await-in-each-step control
WAITS = pick(quick=200, full=1_000)  # concurrent waits per round
WAIT_S = 0.005
# OS switches per wait in one loop. One thread sleeping in epoll_wait for all WAITS timers
# predicts a few switches for the whole round (a few / WAITS per wait); a switch per waiting
# coroutine, as a blocked thread costs, predicts 1 or more. The threshold sits between.
MAX_LOOP_SWITCHES_PER_WAIT = 0.25
# Thread switches / loop switches, same round. The claim predicts at least WAITS / a few
# (every blocked thread is switched out and back); no advantage predicts 1. Between: 10.
MIN_SWITCH_RATIO = 10.0


async def coroutine_steps() -> dict:
    """Steps in which ready tasks ran: for SEGMENT_S without awaiting, then awaiting each step."""
    counter, stop = [0], []

    async def other():
        while not stop:
            counter[0] += 1
            await asyncio.sleep(0)

    others = [asyncio.create_task(other()) for _ in range(READY_TASKS)]
    await asyncio.sleep(0)  # the others have started and are ready again
    seen = {"no_await": 0, "await_each_step": 0}
    last, end = counter[0], time.perf_counter() + SEGMENT_S
    while time.perf_counter() < end:
        spin(STEP_WORK)
        seen["no_await"] += counter[0] != last
        last = counter[0]
    for _ in range(AWAITED_STEPS):
        spin(STEP_WORK)
        await asyncio.sleep(0)
        seen["await_each_step"] += counter[0] != last
        last = counter[0]
    stop.append(True)
    await asyncio.gather(*others)
    return seen


def thread_steps() -> int:
    """Steps in which a busy thread ran, while a thread computed the same steps for SEGMENT_S."""
    counter, stop, moved = [0], threading.Event(), [0]

    def other():
        while not stop.is_set():
            counter[0] += 1

    def worker():
        last, end = counter[0], time.perf_counter() + SEGMENT_S
        while time.perf_counter() < end:
            spin(STEP_WORK)
            moved[0] += counter[0] != last
            last = counter[0]

    threads = [threading.Thread(target=other), threading.Thread(target=worker)]
    for t in threads:
        t.start()
    threads[1].join()
    stop.set()
    threads[0].join()
    return moved[0]


@pytest.mark.claim("CO2")
def test_coroutine_runs_undisturbed_between_awaits(benchmark, evidence, loop):
    rounds, threads = [], []

    async def one_round():
        rounds.append(await coroutine_steps())

    benchmark.group = "CO2 a computing task beside ready tasks"
    bench_async(benchmark, loop, one_round, rounds=ROUNDS, warmup_rounds=0,
                setup=lambda: threads.append(thread_steps()))

    evidence.condition(loop=aio.kind(loop), ready_tasks=READY_TASKS, segment_s=SEGMENT_S,
                       switch_interval_s=sys.getswitchinterval())
    evidence.figure("interleaved_steps_no_await", unit="steps", samples=[r["no_await"] for r in rounds])
    evidence.figure("thread_interleaved_steps", unit="steps", samples=threads)
    evidence.control("interleaved_steps_await_each_step", op=">", threshold=0, unit=f"of {AWAITED_STEPS} steps",
                     samples=[r["await_each_step"] for r in rounds],
                     why="a task awaiting at each step was not interleaved, so an interleaving could not have shown")
    # The program decides predicts 0 steps interleaved without an await; preemption, as the
    # thread control shows, predicts about one per switch interval. One is a counterexample.
    evidence.support("interleaved_steps_without_await", value=sum(r["no_await"] for r in rounds), op="==",
                     threshold=0, unit="steps",
                     why="the loop cannot take the CPU from a coroutine that does not await",
                     opposite=Opposite("the same steps in a thread, which the interpreter preempts",
                                       value=sum(threads)))
    evidence.settle(benchmark)


def _switches() -> tuple[int, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw, usage.ru_nivcsw


def switch_rounds(benchmark, loop) -> dict[str, list[tuple[int, int]]]:
    """(voluntary, involuntary) switches of each round: WAITS waits in the loop (timed) and in threads."""
    counts = {"loop": [], "threads": []}

    def delta(unit, before):
        after = _switches()
        counts[unit].append((after[0] - before[0], after[1] - before[1]))

    with ThreadPoolExecutor(WAITS) as pool:
        wait([pool.submit(time.sleep, WAIT_S) for _ in range(WAITS)])  # all WAITS threads exist now

        def threads_wait():
            before = _switches()
            wait([pool.submit(time.sleep, WAIT_S) for _ in range(WAITS)])
            delta("threads", before)

        async def loop_wait():
            before = _switches()
            await asyncio.gather(*(asyncio.sleep(WAIT_S) for _ in range(WAITS)))
            delta("loop", before)

        bench_async(benchmark, loop, loop_wait, rounds=ROUNDS, warmup_rounds=0, setup=threads_wait)
    return counts


@pytest.mark.claim("CO2")
@needs_linux
def test_concurrent_waits_cost_fewer_os_switches_in_one_loop_than_in_threads(benchmark, evidence, loop):
    benchmark.group = "CO2 N concurrent waits in one loop (threads in setup)"
    counts = switch_rounds(benchmark, loop)

    evidence.condition(loop=aio.kind(loop), waits=WAITS, wait_s=WAIT_S)
    for unit, samples in counts.items():
        evidence.figure(f"{unit}_voluntary_switches", unit="switches", samples=[v for v, _ in samples])
        evidence.figure(f"{unit}_involuntary_switches", unit="switches", samples=[i for _, i in samples])
    total = {unit: [v + i for v, i in samples] for unit, samples in counts.items()}
    evidence.figure("thread_switches_per_wait", unit="switches", samples=[t / WAITS for t in total["threads"]])
    evidence.support("loop_switches_per_wait", op="<=", threshold=MAX_LOOP_SWITCHES_PER_WAIT, unit="switches",
                     samples=[n / WAITS for n in total["loop"]],
                     why="one thread sleeps in epoll_wait once for all the timers")
    evidence.support("thread_over_loop_switches", op=">=", threshold=MIN_SWITCH_RATIO, unit="x",
                     samples=[t / max(n, 1) for t, n in zip(total["threads"], total["loop"])],
                     why="every blocked thread is switched out and back in by the kernel (floor of 1 for the loop)")
    evidence.settle(benchmark)
