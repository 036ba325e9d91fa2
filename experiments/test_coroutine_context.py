"""CO1 and CO2: each coroutine keeps its own context; coroutines switch only where they await.

What is measured:
- CO1: N tasks on one loop each set a contextvars.ContextVar to their own id, then await
  asyncio.sleep(0) repeatedly (every await hands the loop to the next ready task) and read
  the ContextVar after each await; the ContextVar mismatches are the deciding count. A trace
  of which task ran counts the interleavings that actually happened. Controls: a
  module-level dict every task writes before the same await is found overwritten after it
  (other tasks did run in between and did write shared state at those points), and a child
  task made with create_task starts from a copy of its parent's context and cannot change
  the parent's. Plain locals are not checked: they live in the coroutine's own frame, which
  no other task can reach, so they cannot change across an await (a language guarantee).
- CO2, where switches happen: a task runs a long loop of CPU steps while M other tasks are
  ready and counting. Steps in which the others' counter moved are interleavings: without an
  await there are none; with an await in each step there is one per step. The thread
  contrast: a thread running the same loop is switched out without asking (the GIL's
  switch interval), so a busy thread beside it does move the counter.
- CO2, OS context switches: N concurrent waits of WAIT_S, once as N tasks awaiting
  asyncio.sleep in one loop thread, once as N sleeps in a pre-started pool of N threads,
  interleaved round by round. Voluntary and involuntary switches come from
  getrusage(RUSAGE_SELF), which sums all threads of the process, exited ones included
  (/proc/self/status and psutil's num_ctx_switches count the main thread only).

How it is decided: mismatch and interleaving counts of this run; for switches, the ratio of
thread switches to loop switches in the same rounds, with a floor of 1 switch for the loop.

Known traps: the tasks and threads are made before any count or clock starts; the thread
pool is warmed up with N waits first, so thread creation is not counted. Other processes
on the machine add involuntary switches to both variants alike.
"""
from __future__ import annotations

import asyncio
import contextvars
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from harness.aio import bench_async
from harness.scale import pick
from harness.skips import needs_linux
from harness.workloads import spin

ROUNDS = pick(quick=5, full=20)
TASKS = pick(quick=200, full=1_000)  # CO1: concurrent tasks per round
AWAITS_PER_TASK = pick(quick=20, full=30)
MIN_INTERLEAVED_FRACTION = 0.5  # of all awaits; sleep(0) round-robin measures ~1.0
READY_TASKS = 50  # CO2: tasks ready to run while the worker computes
WORKER_STEPS = pick(quick=200, full=500)
STEP_WORK = 1_000  # spin() iterations per step: ~50 us
MIN_AWAITED_FRACTION = 0.9  # of steps in which the others ran when each step awaits
THREAD_SEGMENT_S = 0.08  # 16 GIL switch intervals (5 ms); measures 2-3 preemptions per 50 ms
WAITS = pick(quick=200, full=1_000)  # CO2: concurrent waits per round
WAIT_S = 0.005
MAX_LOOP_SWITCHES_PER_WAIT = 0.25  # one loop thread wakes a few times for all N timers
MIN_SWITCH_RATIO = 10.0  # thread switches / loop switches; each blocked thread costs >= 1

CURRENT = contextvars.ContextVar("current_task_id")
LAST_WRITER = {"id": None}  # the control: a global every task writes


def _loop_name(loop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def _keep_own_context(task_id: int, trace: list) -> dict:
    CURRENT.set(task_id)
    mismatches = clobbered = 0
    for _ in range(AWAITS_PER_TASK):
        LAST_WRITER["id"] = task_id
        trace.append(task_id)
        await asyncio.sleep(0)
        mismatches += CURRENT.get() != task_id  # only the ContextVar could change here
        clobbered += LAST_WRITER["id"] != task_id

    async def child():
        inherited = CURRENT.get()
        CURRENT.set(-task_id - 1)
        await asyncio.sleep(0)
        return inherited

    inherited = await asyncio.create_task(child())
    return {"mismatches": mismatches, "clobbered": clobbered,
            "child_inherited": inherited == task_id, "child_leaked": CURRENT.get() != task_id}


@pytest.mark.claim("CO1")
def test_each_task_keeps_its_own_locals_and_context_across_interleavings(benchmark, evidence, loop):
    rounds = []

    async def many_tasks():
        trace = []
        results = await asyncio.gather(*(_keep_own_context(i, trace) for i in range(TASKS)))
        switches = sum(a != b for a, b in zip(trace, trace[1:]))
        rounds.append({key: sum(r[key] for r in results) for key in results[0]} | {"interleavings": switches})

    benchmark.group = "CO1 tasks checking their context across awaits"
    bench_async(benchmark, loop, many_tasks, rounds=ROUNDS)

    awaits = TASKS * AWAITS_PER_TASK
    evidence.condition(loop=_loop_name(loop), tasks=TASKS, awaits_per_task=AWAITS_PER_TASK)
    evidence.figure("interleavings", unit=f"of {awaits} awaits", samples=[r["interleavings"] for r in rounds])
    evidence.figure("global_clobbered", unit="checks", samples=[r["clobbered"] for r in rounds])
    evidence.figure("contextvar_mismatches", unit=f"of {awaits} checks", samples=[r["mismatches"] for r in rounds])
    evidence.note("locals are not checked: a coroutine's frame is its own, so they cannot change across an await")
    evidence.support(
        "min_interleavings", min(r["interleavings"] for r in rounds), ">=",
        int(MIN_INTERLEAVED_FRACTION * awaits), "switches", why="the tasks really did take turns",
    )
    evidence.support(
        "max_contextvar_mismatches", max(r["mismatches"] for r in rounds), "==", 0, "checks",
        why="each task's ContextVar value survives other tasks running and setting theirs",
    )
    evidence.support(
        "min_global_clobbered", min(r["clobbered"] for r in rounds), ">=", 1, "checks",
        why="control: the same check does catch a shared global that other tasks overwrote",
    )
    evidence.support(
        "children_inherited_context", min(r["child_inherited"] for r in rounds), "==", TASKS, "tasks",
        why="create_task copies the current context",
    )
    evidence.support(
        "children_leaked_into_parent", max(r["child_leaked"] for r in rounds), "==", 0, "tasks",
        why="a child's set() changes only its own copy",
    )
    evidence.settle(benchmark, expect="holds")


async def _worker_sees_others(ready: int, steps: int) -> dict:
    """Steps (of `steps`) in which ready tasks ran, first without awaiting, then awaiting each step."""
    counter, stop = [0], []

    async def other():
        while not stop:
            counter[0] += 1
            await asyncio.sleep(0)

    others = [asyncio.create_task(other()) for _ in range(ready)]
    await asyncio.sleep(0)  # the others have started and are ready again
    seen = {}
    for mode in ("no_await", "await_each_step"):
        moved, last = 0, counter[0]
        for _ in range(steps):
            spin(STEP_WORK)
            if mode == "await_each_step":
                await asyncio.sleep(0)
            moved += counter[0] != last
            last = counter[0]
        seen[mode] = moved
    stop.append(True)
    await asyncio.gather(*others)
    return seen


@pytest.mark.claim("CO2")
def test_coroutine_runs_undisturbed_between_awaits(benchmark, evidence, loop):
    rounds = []

    async def one_round():
        rounds.append(await _worker_sees_others(READY_TASKS, WORKER_STEPS))

    benchmark.group = "CO2 a computing task beside ready tasks"
    bench_async(benchmark, loop, one_round, rounds=ROUNDS)

    evidence.condition(loop=_loop_name(loop), ready_tasks=READY_TASKS, worker_steps=WORKER_STEPS)
    for mode in ("no_await", "await_each_step"):
        evidence.figure(f"interleaved_steps_{mode}", unit=f"of {WORKER_STEPS} steps", samples=[r[mode] for r in rounds])
    evidence.support(
        "max_interleaved_steps_without_await", max(r["no_await"] for r in rounds), "==", 0, "steps",
        why="the loop cannot take the CPU from a coroutine that does not await",
    )
    evidence.support(
        "min_interleaved_steps_with_await", min(r["await_each_step"] for r in rounds), ">=",
        int(MIN_AWAITED_FRACTION * WORKER_STEPS), "steps", why="control: the other tasks were ready and ran at each await",
    )
    evidence.settle(benchmark, expect="holds")


@pytest.mark.claim("CO2")
def test_threads_are_switched_without_asking(benchmark, evidence):
    rounds = []

    def one_round():
        counter, stop, moved = [0], threading.Event(), [0]

        def other():
            while not stop.is_set():
                counter[0] += 1

        def worker():
            last, end = counter[0], time.perf_counter() + THREAD_SEGMENT_S
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
        rounds.append(moved[0])

    benchmark.group = "CO2 a computing thread beside a busy thread"
    benchmark.pedantic(one_round, rounds=ROUNDS)

    evidence.condition(segment_s=THREAD_SEGMENT_S, switch_interval_s=sys.getswitchinterval())
    median = evidence.figure("interleaved_steps", unit="steps", samples=rounds)
    evidence.support(
        "median_interleaved_steps_without_await", median, ">=", 1, "steps",
        why="a thread is preempted wherever the interpreter decides; a coroutine is not",
    )
    evidence.settle(benchmark, expect="holds")


def _switches() -> tuple[int, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw, usage.ru_nivcsw


def _count(samples: list, before, after) -> None:
    samples.append((after[0] - before[0], after[1] - before[1]))


@pytest.mark.claim("CO2")
@needs_linux
def test_concurrent_waits_cost_fewer_os_switches_in_one_loop_than_in_threads(benchmark, evidence, loop):
    counts = {"loop": [], "threads": []}
    thread_walls = []
    with ThreadPoolExecutor(WAITS) as pool:
        wait([pool.submit(time.sleep, WAIT_S) for _ in range(WAITS)])  # all N threads exist now

        def threads_wait():
            t0, before = time.perf_counter(), _switches()
            wait([pool.submit(time.sleep, WAIT_S) for _ in range(WAITS)])
            _count(counts["threads"], before, _switches())
            thread_walls.append(time.perf_counter() - t0)

        async def loop_wait():
            before = _switches()
            await asyncio.gather(*(asyncio.sleep(WAIT_S) for _ in range(WAITS)))
            _count(counts["loop"], before, _switches())

        benchmark.group = "CO2 N concurrent waits in one loop (threads in setup)"
        bench_async(benchmark, loop, loop_wait, rounds=ROUNDS, warmup_rounds=0, setup=threads_wait)

    evidence.condition(loop=_loop_name(loop), waits=WAITS, wait_s=WAIT_S)
    evidence.figure("threads_wall", unit="s", samples=thread_walls)
    for unit, samples in counts.items():
        evidence.figure(f"{unit}_voluntary_switches", unit="switches", samples=[v for v, _ in samples])
        evidence.figure(f"{unit}_involuntary_switches", unit="switches", samples=[i for _, i in samples])
    total = {unit: sorted(v + i for v, i in samples) for unit, samples in counts.items()}
    median = {unit: values[len(values) // 2] for unit, values in total.items()}
    evidence.figure("thread_switches_per_wait", median["threads"] / WAITS, "switches")
    evidence.support(
        "loop_switches_per_wait", median["loop"] / WAITS, "<=", MAX_LOOP_SWITCHES_PER_WAIT, "switches",
        why="one thread sleeps in epoll_wait once for all N timers",
    )
    evidence.support(
        "thread_over_loop_switches", median["threads"] / max(median["loop"], 1), ">=", MIN_SWITCH_RATIO, "x",
        why="every blocked thread is switched out and back in by the kernel",
    )
    evidence.settle(benchmark, expect="holds")
