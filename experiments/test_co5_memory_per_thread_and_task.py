"""CO5: a thread costs an 8 MB stack and a 64 MB heap, a coroutine about a dozen KB.

What is measured: in a fresh interpreter per measurement (harness.children.memory_probe), N
threads that block on a threading.Event, or N asyncio tasks that wait on an asyncio.Event,
are started; once every unit is blocked the child reads its memory: resident (RSS, and USS
from smaps_rollup), virtual (VMS), the count of glibc malloc arenas and of memory mappings.
Per-unit figures are (memory with N units - memory just before) / N, taken in the same child,
so interpreter and import costs cancel. Threads are measured in rounds of children, one in the
default environment and one with MALLOC_ARENA_MAX=1 (one shared arena, so no per-thread heap):
the difference in address space per thread is what the arenas add.

Why this method: RSS of a fresh process counts only what the units touched; VMS counts what
they reserved. The notes' "8 MB stack" is RLIMIT_STACK, which glibc uses as each thread's
stack *reservation*; their "64 MB heap" is glibc's per-thread malloc arena, also a
reservation (HEAP_MAX), made lazily when a thread first mallocs and capped at a multiple of
the online CPUs (GLIBC_ARENAS_PER_CPU), then shared. So the two numbers could be address space, not memory used.

How it is decided, per round and by the interval of the median (stats.MIN_SAMPLES or more,
sampled until decided up to MAX_MEMORY_ROUNDS):
- threads: address space per thread with one arena (the stack reservation) is a support
  check, resident memory per thread a caveat (reserved, not used);
- arenas: address space per arena is a support check (the 64 MB exists), address space the
  arenas add per thread a caveat (capped and shared, so not per thread). ARENA_THREADS is
  several times glibc's cap, so that sharing, where it happens, shows;
- tasks: resident per task is a support check (about a dozen KB) and, far below it, a caveat;
- counts: THREAD_CAP threads and TASK_CAP tasks are started once; the thread/task
  resident ratio supports "ceiling long before", and the projected thread ceiling is a
  caveat when kernel count limits (maps, pids) bound it before memory does.

The opposite worlds, measured in the same rounds (each round runs every child, in an order
that alternates between rounds; harness.evidence.Opposite judges them by the same check):
- for the stack reservation: threads started after threading.stack_size(SMALL_STACK) in the
  one-arena child, which starts its threads twice, at the default size and at SMALL_STACK, in
  alternating order. A 256 KiB reservation lands below the threshold; the check decides only
  if the default size lands above it.
- for the heap per thread: a third child, the default one with glibc's cap lifted far above
  the thread count (MALLOC_ARENA_MAX=UNCAPPED_ARENAS), so that every thread gets an arena of
  its own, as the notes' "64 MB heap per thread" has it; minus the one-arena child's address
  space per thread, as in the claim's world. (MALLOC_ARENA_MAX=1 cannot be this check's opposite:
  with one arena the heap per thread is ≈ 0, on the caveat's side too. It is the subtraction's
  baseline in both worlds.)
At full scale the default and one-arena children are also run at thread counts from a quarter
of glibc's cap to four times it (ARENA_SWEEP_CAP_MULTIPLES), recorded as figures
heap_vms_per_thread_at_cap_x<multiple>: the heap per thread is about one arena below the cap
and falls as threads share above it. The deciding count, ARENA_THREADS, stays above the cap.

Known traps: "resident" is the larger of RSS and USS (older kernels batch per-thread RSS
counters, so RSS alone can lag with many threads); gc runs before each snapshot; the starting
loop of many tasks includes the cyclic GC's passes over the growing heap, as real programs do.
Thread counts are bounded here, so the ceiling itself is projected, never reached. A thread
started first in a child reuses the arena its warm-up thread freed, so N threads below the
cap make N - 1 arenas.
"""
from __future__ import annotations

import os
import resource

import psutil
import pytest

from harness import stats
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux
from harness.stats import sample_rounds
from harness.subproc import run_module
from harness.timing import replay

MAX_MEMORY_ROUNDS = pick(quick=8, full=12)  # ... and the most, when an interval straddles
TASK_N = pick(quick=1_000, full=10_000)  # tasks per child in the decided rounds (cheap: ~0.1 s a child)
THREAD_CAP = pick(quick=1_000, full=5_000)  # bounded: a shared machine, not a stress test
TASK_CAP = pick(quick=100_000, full=1_000_000)
START_BUDGET_S = pick(quick=5.0, full=60.0)  # time allowed to start units, per child
CHILD_TIMEOUT_S = pick(quick=60.0, full=300.0)
ONE_ARENA = {"MALLOC_ARENA_MAX": "1"}
GLIBC_ARENAS_PER_CPU = 8  # glibc's arena cap on 64-bit: 8 x online CPUs (M_ARENA_MAX unset)
ARENA_THREADS = min(THREAD_CAP, max(100, 4 * GLIBC_ARENAS_PER_CPU * (os.cpu_count() or 1)))
MIB, KIB = 1 << 20, 1 << 10
SMALL_STACK = 256 * KIB  # the stack opposite world's threading.stack_size: far below the 8 MiB default
UNCAPPED_ARENAS = 4 * ARENA_THREADS  # the heap opposite world's MALLOC_ARENA_MAX: no thread has to share
# At full scale: thread counts, as multiples of glibc's arena cap, at which the heap per thread is a figure.
ARENA_SWEEP_CAP_MULTIPLES = pick(quick=(), full=(0.25, 0.5, 1, 2, 4))
# Address space per thread with one shared arena. An 8 MiB stack reservation predicts 8 MiB;
# no such stack predicts about what a thread keeps resident (tens of KiB). Between: 4 MiB.
MIN_STACK_VMS_PER_THREAD = 4 * MIB
# Resident per blocked thread. The notes' 8 MB as memory used predicts 8 MiB; a reservation
# of which a blocked thread touches a few pages predicts tens of KiB. Between: 256 KiB.
MAX_THREAD_RESIDENT = 256 * KIB
# Address space per malloc arena. A 64 MiB heap (HEAP_MAX) predicts 64 MiB; no such heap
# predicts a few pages. Between: 32 MiB.
MIN_ARENA_VMS = 32 * MIB
# Address space the arenas add per thread. The notes' 64 MB heap per thread predicts 64 MiB;
# arenas capped at GLIBC_ARENAS_PER_CPU x CPUs and shared predict at most 64 MiB x cap / ARENA_THREADS, a
# quarter of it or less. Between: 32 MiB.
MAX_HEAP_VMS_PER_THREAD = 32 * MIB
NOTES_TASK_BYTES = 12 * KIB  # "about a dozen KB"
# Resident per blocked task. "About a dozen KB" predicts 12 KiB; a task as costly as the
# notes' thread (8 MB + 64 MB) predicts megabytes. Between, allowing "about": twice the dozen.
MAX_TASK_RESIDENT = 2 * NOTES_TASK_BYTES
# The caveat: a Task, its coroutine frame and the Event's waiter future are a few hundred
# bytes each, about 1 KiB together, against the notes' 12 KiB. Between: 4 KiB.
MAX_TASK_RESIDENT_CAVEAT = 4 * KIB
# Thread / task resident bytes per unit. The claim predicts (8 MB + 64 MB) / 12 KB, thousands;
# threads no costlier than tasks predict 1. Between: 4.
MIN_RESIDENT_RATIO = 4.0


def per_unit(out: dict) -> dict:
    """A probe's output plus its per-unit deltas (and the arenas it created, on glibc)."""
    started = max(1, out["started"])
    out["per_unit"] = {k: (out["after"][k] - out["base"][k]) / started
                       for k in ("rss", "uss", "resident", "vms", "mappings")}
    if out["base"]["arenas"] is not None:
        out["arenas_created"] = out["after"]["arenas"] - out["base"]["arenas"]
    return out


def probe(unit: str, n: int, env: dict | None = None) -> dict:
    """Start n units in a fresh child; return its snapshots plus per-unit deltas."""
    return per_unit(run_module("harness.children.memory_probe", unit, n, START_BUDGET_S, timeout=CHILD_TIMEOUT_S,
                               env=env).result())


def probe_two_stacks(n: int, small_first: bool) -> dict[str, dict]:
    """n threads at the default stack size and n at SMALL_STACK, in one MALLOC_ARENA_MAX=1 child
    (harness.children.two_stacks)."""
    sizes = (SMALL_STACK, 0) if small_first else (0, SMALL_STACK)
    runs = run_module("harness.children.two_stacks", n, START_BUDGET_S, *sizes, timeout=CHILD_TIMEOUT_S,
                      env=ONE_ARENA).result()
    return {"one_arena": per_unit(runs["0"]), "small_stack": per_unit(runs[str(SMALL_STACK)])}


def heap_vms_per_thread(p: dict, world: str = "default") -> float:
    """Address space per thread that the arenas add: `world`'s child minus the one-arena child, same round."""
    return p[world]["per_unit"]["vms"] - p["one_arena"]["per_unit"]["vms"]


# The per-round figures that decide the thread parts, from a round of children (default, one arena, ...).
THREAD_FIGURES = {
    "stack_vms_per_thread": (lambda p: p["one_arena"]["per_unit"]["vms"], ">=", MIN_STACK_VMS_PER_THREAD),
    "resident_per_thread": (lambda p: p["default"]["per_unit"]["resident"], "<=", MAX_THREAD_RESIDENT),
}
ARENA_FIGURES = {
    "vms_per_arena": (lambda p: (p["default"]["after"]["vms"] - p["default"]["base"]["vms"]
                                 - p["one_arena"]["per_unit"]["vms"] * p["default"]["started"])
                      / max(1, p["default"]["arenas_created"]), ">=", MIN_ARENA_VMS),
    "heap_vms_per_thread": (heap_vms_per_thread, "<=", MAX_HEAP_VMS_PER_THREAD),
}
# The same figures in the opposite worlds of the same rounds: (label, figure).
OPPOSITES = {
    "stack_vms_per_thread": (f"threads started after threading.stack_size({SMALL_STACK // KIB} KiB), "
                             "MALLOC_ARENA_MAX=1, same child and rounds",
                             lambda p: p["small_stack"]["per_unit"]["vms"]),
    "heap_vms_per_thread": (f"glibc's arena cap lifted (MALLOC_ARENA_MAX={UNCAPPED_ARENAS}): an arena per "
                            "thread, interleaved rounds", lambda p: heap_vms_per_thread(p, "uncapped")),
}


@pytest.fixture(scope="module")
def thread_pairs() -> list[dict]:
    """Rounds of ARENA_THREADS threads in three children: default; MALLOC_ARENA_MAX=1 at the default stack
    size and at SMALL_STACK (one child); and MALLOC_ARENA_MAX=UNCAPPED_ARENAS. The children's order
    alternates between rounds.

    Shared by the stack and the arena tests (one set of children, both decided from it);
    sampled until every deciding figure and its opposite are decided, within MAX_MEMORY_ROUNDS.
    """
    made: list = []

    def one_round():
        flip = len(made) % 2 == 1
        made.append(None)
        worlds = [lambda: {"default": probe("thread", ARENA_THREADS)},
                  lambda: probe_two_stacks(ARENA_THREADS, small_first=flip),
                  lambda: {"uncapped": probe("thread", ARENA_THREADS, {"MALLOC_ARENA_MAX": str(UNCAPPED_ARENAS)})}]
        round_ = {}
        for world in reversed(worlds) if flip else worlds:
            round_.update(world())
        return round_

    def decided(rounds):
        glibc = rounds[0]["default"].get("arenas_created") is not None
        figures = THREAD_FIGURES | (ARENA_FIGURES if glibc else {})
        worlds = [(fn, op, limit) for fn, op, limit in figures.values()]
        worlds += [(OPPOSITES[name][1], op, limit) for name, (_, op, limit) in figures.items() if name in OPPOSITES]
        return all(stats.decided([fn(r) for r in rounds], op, limit) for fn, op, limit in worlds)

    return sample_rounds(one_round, max_rounds=MAX_MEMORY_ROUNDS, done=decided)


def record_common(evidence, out: dict, unit: str, n: int) -> None:
    evidence.condition(unit=unit, n=n, stack_rlimit=out["stack_rlimit"], threading_stack_size=out["stack_size"],
                       online_cpus=out["online_cpus"])
    evidence.figure("stack_rlimit", out["stack_rlimit"], "bytes")
    evidence.figure("threading_stack_size", out["stack_size"], "bytes")


def decide(evidence, role: str, name: str, figures: dict, rounds: list, unit: str, why: str) -> None:
    fn, op, limit = figures[name]
    opposite = None
    if name in OPPOSITES:
        label, other = OPPOSITES[name]
        opposite = Opposite(label, samples=[other(r) for r in rounds])
    evidence.check(role, name, op=op, threshold=limit, unit=unit, samples=[fn(r) for r in rounds], why=why,
                   opposite=opposite)


def threads_part(benchmark, evidence, request) -> None:
    """Threads: the stack is reserved (address space) but barely used (resident)."""
    pairs = request.getfixturevalue("thread_pairs")
    benchmark.group = "CO5 start threads and wait until all are blocked (MALLOC_ARENA_MAX=1)"
    replay(benchmark, [p["one_arena"]["seconds"] for p in pairs], units=ARENA_THREADS)

    record_common(evidence, pairs[-1]["default"], "thread", ARENA_THREADS)
    for key in ("rss", "uss", "vms"):
        evidence.figure(f"{key}_per_thread", unit="bytes", samples=[p["default"]["per_unit"][key] for p in pairs])
    evidence.note("stack address space is read with MALLOC_ARENA_MAX=1, where threads make no arenas of their own")
    evidence.figure("small_stack_size", SMALL_STACK, "bytes")
    decide(evidence, "support", "stack_vms_per_thread", THREAD_FIGURES, pairs, "bytes",
           why="each thread reserves its stack (RLIMIT_STACK) as address space")
    decide(evidence, "caveat", "resident_per_thread", THREAD_FIGURES, pairs, "bytes",
           why="only the stack pages a thread touches become resident: the 8 MB is a reservation")


def tasks_part(benchmark, evidence, _request) -> None:
    """Tasks: a blocked task is a few small heap objects."""
    def decided(rounds):
        resident = [r["per_unit"]["resident"] for r in rounds]
        return all(stats.decided(resident, "<=", limit) for limit in (MAX_TASK_RESIDENT, MAX_TASK_RESIDENT_CAVEAT))

    rounds = sample_rounds(lambda: probe("coroutine", TASK_N), max_rounds=MAX_MEMORY_ROUNDS, done=decided)
    benchmark.group = "CO5 start tasks and wait until all are blocked"
    replay(benchmark, [r["seconds"] for r in rounds], units=TASK_N)

    record_common(evidence, rounds[-1], "coroutine", TASK_N)
    for key in ("rss", "uss", "vms"):
        evidence.figure(f"{key}_per_task", unit="bytes", samples=[r["per_unit"][key] for r in rounds])
    resident = [r["per_unit"]["resident"] for r in rounds]
    evidence.support("resident_per_task", op="<=", threshold=MAX_TASK_RESIDENT, unit="bytes", samples=resident,
                     why="a task is a small heap object: Task + coroutine frame + waiter future")
    evidence.caveat("resident_per_task_far_below_the_notes", op="<=", threshold=MAX_TASK_RESIDENT_CAVEAT,
                    unit="bytes", samples=resident, why="a task costs far less than the notes' dozen KB")


PER_UNIT_PARTS = {"thread": threads_part, "coroutine": tasks_part}


@pytest.mark.claim("CO5")
@needs_linux
@pytest.mark.parametrize("unit", sorted(PER_UNIT_PARTS))
def test_resident_memory_per_unit_is_far_below_the_notes_figures(benchmark, evidence, request, unit):
    PER_UNIT_PARTS[unit](benchmark, evidence, request)
    evidence.settle(benchmark)


@pytest.mark.claim("CO5")
@needs_linux
def test_thread_heap_is_a_shared_lazily_made_malloc_arena(benchmark, evidence, thread_pairs):
    """Threads that malloc get glibc arenas of HEAP_MAX address space each, up to a cap per CPU, then share."""
    benchmark.group = "CO5 start threads and wait until all are blocked"
    replay(benchmark, [p["default"]["seconds"] for p in thread_pairs], units=ARENA_THREADS)

    out = thread_pairs[-1]["default"]
    if out.get("arenas_created") is None:
        evidence.not_measured("malloc_info is unavailable: this libc is not glibc, where the 64 MB arena comes from")
    record_common(evidence, out, "thread", ARENA_THREADS)
    arena_cap = GLIBC_ARENAS_PER_CPU * out["online_cpus"]
    evidence.figure("arenas_created", unit="arenas", samples=[p["default"]["arenas_created"] for p in thread_pairs])
    evidence.figure("glibc_arena_cap", arena_cap, "arenas")
    evidence.figure("vms_per_thread_one_arena", unit="bytes",
                    samples=[p["one_arena"]["per_unit"]["vms"] for p in thread_pairs])
    evidence.note("a Python thread mallocs as it starts, so arenas appear without user code allocating")
    if ARENA_THREADS < 4 * arena_cap:
        evidence.not_measured(f"{ARENA_THREADS} threads (the bound) are under 4 x the arena cap of {arena_cap}: "
                              "arenas shared between threads could not show")
    evidence.figure("arenas_created_uncapped", unit="arenas",
                    samples=[p["uncapped"]["arenas_created"] for p in thread_pairs])
    arena_sweep(evidence, arena_cap)
    decide(evidence, "support", "vms_per_arena", ARENA_FIGURES, thread_pairs, "bytes",
           why="each arena reserves a 64 MiB heap (glibc HEAP_MAX), the notes' '64 MB heap'")
    decide(evidence, "caveat", "heap_vms_per_thread", ARENA_FIGURES, thread_pairs, "bytes",
           why="arenas are capped per CPU and shared: the 64 MB is not per thread, and is reserved")
    evidence.settle(benchmark)


def arena_sweep(evidence, arena_cap: int) -> None:
    """At full scale: heap address space per thread at thread counts from below to above the arena cap (figures)."""
    counts = {m: max(1, round(m * arena_cap)) for m in ARENA_SWEEP_CAP_MULTIPLES}
    if not counts:
        return
    evidence.condition(arena_sweep_threads={f"x{m:g}": n for m, n in counts.items()})
    made: list = []

    def one_round():
        flip = len(made) % 2 == 1
        made.append(None)
        round_ = {}
        for m, n in reversed(counts.items()) if flip else counts.items():
            pair = [("default", None), ("one_arena", ONE_ARENA)]
            round_[m] = {world: probe("thread", n, env) for world, env in (reversed(pair) if flip else pair)}
        return round_

    rounds = sample_rounds(one_round, min_rounds=stats.MIN_SAMPLES, max_rounds=stats.MIN_SAMPLES)
    for m in counts:
        evidence.figure(f"heap_vms_per_thread_at_cap_x{m:g}", unit="bytes",
                        samples=[heap_vms_per_thread(r[m]) for r in rounds])
        evidence.figure(f"arenas_created_at_cap_x{m:g}", unit="arenas",
                        samples=[r[m]["default"]["arenas_created"] for r in rounds])


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return None if text == "max" else int(text)


def kernel_thread_limits() -> dict:
    """Kernel/process limits on the number of threads, read now; absent ones are left out."""
    limits = {
        "threads_max": _read_int("/proc/sys/kernel/threads-max"),
        "pid_max": _read_int("/proc/sys/kernel/pid_max"),
        "max_map_count": _read_int("/proc/sys/vm/max_map_count"),
    }
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    limits["rlimit_nproc"] = None if nproc == resource.RLIM_INFINITY else nproc
    with open("/proc/self/cgroup") as f:
        cgroups = f.read().splitlines()
    for line in cgroups:
        _, controllers, path = line.strip().split(":", 2)
        if controllers in ("", "pids"):
            sub = "" if controllers == "" else "pids"
            value = _read_int(os.path.join("/sys/fs/cgroup", sub, path.lstrip("/"), "pids.max"))
            if value is not None:
                limits["cgroup_pids_max"] = value
    return {k: v for k, v in limits.items() if v is not None}


def project_ceilings(evidence, th: dict, tk: dict) -> tuple[int, int, int]:
    """Thread ceilings by kernel limits and by memory, and the task ceiling, from this run's figures."""
    available = evidence.figure("memory_available", psutil.virtual_memory().available, "bytes")
    maps_per_thread = evidence.figure("mappings_per_thread", th["per_unit"]["mappings"], "mappings")
    limits = kernel_thread_limits()
    if "max_map_count" in limits and maps_per_thread > 0:
        limits["max_map_count"] = int(limits["max_map_count"] / maps_per_thread)
    for name, value in limits.items():
        evidence.figure(f"thread_limit_{name}", value, "threads")
    by_memory = evidence.figure("thread_ceiling_by_memory", int(available / th["per_unit"]["resident"]), "threads")
    task_ceiling = evidence.figure("task_ceiling", int(available / tk["per_unit"]["resident"]), "tasks")
    if _read_int("/proc/sys/vm/overcommit_memory") == 2:
        evidence.note("overcommit_memory=2: each stack is committed, so CommitLimit bounds threads too")
    return min(limits.values()), by_memory, task_ceiling


@pytest.mark.claim("CO5")
@needs_linux
def test_tasks_cost_far_less_memory_than_threads(benchmark, evidence):
    """Start up to THREAD_CAP threads and TASK_CAP tasks in bounded time; project each ceiling."""
    threads, tasks = [], []
    benchmark.group = "CO5 start as many units as the budget allows"
    tasks.append(probe("coroutine", TASK_CAP))
    threads.append(probe("thread", THREAD_CAP))
    replay(benchmark, [tasks[-1]["seconds"]])

    th, tk = threads[-1], tasks[-1]
    record_common(evidence, th, "thread+coroutine", THREAD_CAP)
    evidence.condition(thread_cap=THREAD_CAP, task_cap=TASK_CAP, start_budget_s=START_BUDGET_S,
                       overcommit_memory=_read_int("/proc/sys/vm/overcommit_memory"))
    for name, out, unit in (("thread", th, "threads"), ("task", tk, "tasks")):
        evidence.figure(f"{name}s_started", out["started"], unit)
        evidence.figure(f"{name}_start_time", out["seconds"], "s")
        evidence.figure(f"{name}_resident_per_unit", out["per_unit"]["resident"], "bytes")
        evidence.figure(f"{name}_vms_per_unit", out["per_unit"]["vms"], "bytes")
    if th["error"]:
        evidence.note(f"thread start failed after {th['started']}: {th['error']}")
    by_limits, by_memory, task_ceiling = project_ceilings(evidence, th, tk)
    thread_ceiling = evidence.figure("thread_ceiling", min(by_limits, by_memory), "threads")
    evidence.note("the caps are this suite's bounds, so the ceilings are projections from the measured per-unit "
                  "figures and the kernel limits read now")
    evidence.support("resident_ratio", value=th["per_unit"]["resident"] / tk["per_unit"]["resident"], op=">=",
                     threshold=MIN_RESIDENT_RATIO, unit="x",
                     why="a thread's resident cost (stack pages, thread state) vs a task's heap objects")
    # a projection from the same figures as resident_ratio (never below it), so no check
    evidence.figure("projected_ceiling_ratio", task_ceiling / thread_ceiling, "x (projection: task/thread ceiling)")
    # The notes' 8 MB + 64 MB per thread as memory used predicts memory binds first; threads
    # that cost tens of KiB predict the kernel's count limits bind first.
    evidence.caveat("thread_ceiling_by_kernel_limits", value=by_limits, op="<", threshold=by_memory, unit="threads",
                    why="the thread ceiling is a kernel count limit (maps, pids), not the 8 MB x N the notes imply")
    evidence.settle(benchmark)
