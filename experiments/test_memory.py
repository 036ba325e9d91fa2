"""CO5: a thread costs an 8 MB stack and a 64 MB heap, a coroutine about a dozen KB.

What is measured: in a fresh interpreter per measurement (harness.subproc), N threads that
block on a threading.Event, or N asyncio tasks that wait on an asyncio.Event, are started;
once every unit is blocked the child reads its memory: resident (RSS, and USS from
smaps_rollup via psutil.memory_full_info), virtual (VMS), the count of glibc malloc arenas
(malloc_info's <heap> entries) and of memory mappings. Per-unit figures are
(memory with N units - memory just before)/N, taken in the same child, so interpreter and
import costs cancel. The child also reports the stack rlimit and threading.stack_size().
The benchmark times starting the N units inside the child (the rest of the child's life
is left out through harness.timing's virtual clock, as bench_async does).

Why this method: RSS of a fresh process counts only what the units touched; VMS counts
what they reserved. The notes' "8 MB stack" is RLIMIT_STACK, which glibc uses as each
thread's stack *reservation*; their "64 MB heap" is glibc's per-thread malloc arena, also
a reservation (HEAP_MAX), made lazily when a thread first mallocs and capped at
8 x online CPUs arenas, then shared. So the two numbers are address space, not memory used.

How it is decided:
- threads: VMS/thread, less the arenas they made, >= 4 MiB (the stack reservation the
  claim names is there: support) while
  resident/thread <= 256 KiB (it is reservation, not use: caveat). The arenas are taken
  out at GLIBC_HEAP_MAX = 64 MiB each: glibc's documented HEAP_MAX on 64-bit, an
  assumption in that test (recorded as a setting), not a figure measured in its child; the
  arena test below measures the VMS per arena separately. Overstating it would only
  understate the stack figure, i.e. make the support check harder to pass;
- arenas: address space per new arena >= 32 MiB (the 64 MB exists: support) while fewer
  arenas than threads are made (shared, not per thread: caveat);
- tasks: resident/task < 12 KiB (support) and <= 4 KiB, a third of the notes' figure (caveat);
- counts: units are started up to a bounded cap within a time budget; the ceilings are
  projected from the measured per-unit figures and the kernel's limits read in this run.
  Support: the thread/task resident ratio; the task/thread ceiling ratio is a projection
  from those same figures (a labelled figure, not a check); caveat: the thread ceiling
  comes from kernel count limits (maps, pids), not from the memory the notes quote.

Known traps: "resident" is the larger of RSS and USS (older kernels batch per-thread RSS
counters, so RSS alone can lag with many threads); gc runs before each snapshot; the
starting loop of 100k tasks includes the cyclic GC's passes over the growing heap, as real
programs do. Thread counts are bounded here (a few thousand), so the ceiling itself is
projected, never reached.
"""
from __future__ import annotations

import os
import resource

import pytest

from harness.scale import pick
from harness.skips import needs_linux
from harness.subproc import run_python
from harness.timing import pedantic_self_timed

THREAD_COUNTS = pick(quick=(100, 500), full=(100, 500, 2_000))
TASK_COUNTS = pick(quick=(1_000, 10_000, 100_000), full=(1_000, 10_000, 100_000, 1_000_000))
MEMORY_ROUNDS = pick(quick=2, full=5)  # per-unit bytes repeat to within ~1% between children
BIG_N = 100_000  # from here one child takes ~1 s (the cyclic GC walks the growing heap)...
BIG_N_ROUNDS = pick(quick=1, full=3)  # ...so fewer rounds; their spread is shown at smaller N
THREAD_CAP = pick(quick=2_000, full=5_000)  # bounded: a shared machine, not a stress test
TASK_CAP = pick(quick=100_000, full=1_000_000)
START_BUDGET_S = pick(quick=5.0, full=60.0)  # time allowed to start units, per child
CHILD_TIMEOUT_S = pick(quick=60.0, full=300.0)
MIN_THREAD_VMS_PER_UNIT = 4 << 20  # glibc reserves RLIMIT_STACK (8 MiB here) per thread
MAX_THREAD_RESIDENT_PER_UNIT = 256 << 10  # measured ~16 KiB: a few stack pages + thread state
NOTES_TASK_BYTES = 12 << 10  # "about a dozen KB"
MAX_TASK_RESIDENT_PER_UNIT = 4 << 10  # measured ~1.1-1.2 KiB
MIN_ARENA_VMS = 32 << 20  # a glibc arena heap reserves HEAP_MAX = 64 MiB on 64-bit
GLIBC_HEAP_MAX = 64 << 20  # glibc's documented HEAP_MAX (64-bit): an assumed, not measured, arena size
MIN_RESIDENT_RATIO = 4.0  # thread/task resident bytes per unit measure ~13x here

# The child: start N units (or as many as START_BUDGET_S allows), snapshot, emit, exit hard
# (tearing down 100k tasks or thousands of threads is not what is measured).
PROBE = r'''
import asyncio, ctypes, gc, os, resource, sys, threading, time
import psutil

UNIT, N, BUDGET_S = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ME = psutil.Process()

def malloc_arenas():
    """glibc malloc arenas in use (one <heap> per arena in malloc_info); None off glibc."""
    try:
        libc = ctypes.CDLL(None)
        libc.open_memstream.restype = ctypes.c_void_p
        buf, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = ctypes.c_void_p(libc.open_memstream(ctypes.byref(buf), ctypes.byref(size)))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        xml = ctypes.string_at(buf, size.value).decode()
        libc.free(buf)
        return xml.count("<heap nr=")
    except (AttributeError, OSError):
        return None

def snapshot():
    gc.collect()
    full = ME.memory_full_info()
    uss = getattr(full, "uss", full.rss)
    with open("/proc/self/maps") as maps:
        mappings = sum(1 for _ in maps)
    return {"rss": full.rss, "uss": uss, "resident": max(full.rss, uss), "vms": full.vms,
            "arenas": malloc_arenas(), "mappings": mappings}

def start_threads():
    release, ready = threading.Event(), threading.Semaphore(0)
    def body():
        ready.release()
        release.wait()
    warm = threading.Thread(target=body)  # first-use costs out of the baseline
    warm.start(); ready.acquire(); release.set(); warm.join(); release.clear()
    base, error, started = snapshot(), "", []
    t0 = time.perf_counter()
    try:
        while len(started) < N and time.perf_counter() - t0 < BUDGET_S:
            t = threading.Thread(target=body, daemon=True)
            t.start()
            started.append(t)
    except RuntimeError as exc:  # "can't start new thread": a ceiling reached
        error = str(exc)
    for _ in started:
        ready.acquire()  # every thread is inside body, blocked on the Event
    elapsed = time.perf_counter() - t0
    return base, snapshot(), len(started), elapsed, error

async def start_tasks():
    release, running = asyncio.Event(), [0]
    async def body():
        running[0] += 1
        await release.wait()
    warm = [asyncio.create_task(body()) for _ in range(10)]
    await asyncio.sleep(0); release.set(); await asyncio.gather(*warm); release.clear()
    running[0] = 0
    base, started = snapshot(), []
    t0 = time.perf_counter()
    while len(started) < N and time.perf_counter() - t0 < BUDGET_S:
        started.append(asyncio.create_task(body()))
    await asyncio.sleep(0)  # one loop pass runs every new task to its first await
    elapsed = time.perf_counter() - t0
    assert running[0] == len(started), (running[0], len(started))
    # Snapshot here, while `started` holds the tasks: once this coroutine returns, the
    # pending tasks form an unreachable cycle that gc.collect() would free.
    return base, snapshot(), len(started), elapsed, ""

if UNIT == "thread":
    base, after, started, seconds, error = start_threads()
else:
    base, after, started, seconds, error = asyncio.new_event_loop().run_until_complete(start_tasks())
emit({"started": started, "seconds": seconds, "error": error, "base": base, "after": after,
      "stack_rlimit": resource.getrlimit(resource.RLIMIT_STACK)[0],
      "stack_size": threading.stack_size(), "online_cpus": os.cpu_count()})
os._exit(0)
'''


def probe(unit: str, n: int, env: dict | None = None) -> dict:
    """Start n units in a fresh child; return its snapshot plus per-unit deltas."""
    out = run_python(PROBE, timeout=CHILD_TIMEOUT_S, args=(unit, n, START_BUDGET_S), env=env).result()
    started = max(1, out["started"])
    out["per_unit"] = {k: (out["after"][k] - out["base"][k]) / started
                       for k in ("rss", "uss", "resident", "vms", "mappings")}
    if out["base"]["arenas"] is not None:
        out["arenas_created"] = out["after"]["arenas"] - out["base"]["arenas"]
    return out


def timed_probe(unit: str, n: int, results: list, env: dict | None = None) -> float:
    """Benchmark target: returns the child's own time to start the units, all the clock keeps."""
    out = probe(unit, n, env)
    results.append(out)
    return out["seconds"]


def record_common(evidence, out: dict, unit: str, n: int) -> None:
    evidence.condition(unit=unit, n=n, stack_rlimit=out["stack_rlimit"],
                       threading_stack_size=out["stack_size"], online_cpus=out["online_cpus"])
    evidence.figure("stack_rlimit", out["stack_rlimit"], "bytes")
    evidence.figure("threading_stack_size", out["stack_size"], "bytes")


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


MEMORY_CASES = [("thread", n) for n in THREAD_COUNTS] + [("coroutine", n) for n in TASK_COUNTS]


@pytest.mark.claim("CO5")
@needs_linux
@pytest.mark.parametrize("unit,n", MEMORY_CASES, ids=[f"{u}-{n}" for u, n in MEMORY_CASES])
def test_resident_memory_per_unit_is_far_below_the_notes_figures(benchmark, evidence, unit, n):
    results: list[dict] = []
    benchmark.group = f"CO5 start {unit}s and wait until all are blocked"
    rounds = MEMORY_ROUNDS if n < BIG_N else BIG_N_ROUNDS
    pedantic_self_timed(benchmark, lambda: timed_probe(unit, n, results), rounds=rounds)

    record_common(evidence, results[-1], unit, n)
    started = min(r["started"] for r in results)
    evidence.figure("units_started", started, unit + "s")
    if started < n:
        pytest.skip(f"only {started} of {n} {unit}s started within {START_BUDGET_S} s: no per-unit figure")
    per = {k: _median([r["per_unit"][k] for r in results]) for k in ("rss", "uss", "resident", "vms")}
    for key in ("rss", "uss", "vms"):
        evidence.figure(f"{key}_per_unit", per[key], "bytes", samples=[r["per_unit"][key] for r in results])
    evidence.figure("start_time_per_unit", unit="us", samples=[r["seconds"] / r["started"] * 1e6 for r in results])
    if unit == "thread":
        # VMS/thread also carries the malloc arenas the threads made, amortised over N;
        # without them what is left is the stack reservation (and a guard page). The arena
        # size is glibc's documented HEAP_MAX, assumed here (the arena test measures it).
        arena_vms = [(r.get("arenas_created") or 0) * GLIBC_HEAP_MAX / r["started"] for r in results]
        stack_vms = [r["per_unit"]["vms"] - a for r, a in zip(results, arena_vms)]
        evidence.figure("arena_vms_per_unit", _median(arena_vms), "bytes", samples=arena_vms)
        evidence.note(f"arena address space taken out at {GLIBC_HEAP_MAX >> 20} MiB per arena: glibc's "
                      "documented HEAP_MAX on 64-bit, an assumption here, not measured in this child")
        evidence.support(
            "stack_vms_per_unit", _median(stack_vms), ">=", MIN_THREAD_VMS_PER_UNIT, "bytes",
            why=f"each thread reserves its stack (RLIMIT_STACK = {results[-1]['stack_rlimit']} bytes)",
        )
        evidence.caveat(
            "resident_per_unit", per["resident"], "<=", MAX_THREAD_RESIDENT_PER_UNIT, "bytes",
            why="only the stack pages a thread touches become resident: the 8 MB is a reservation",
        )
    else:
        evidence.support("resident_per_unit", per["resident"], "<", NOTES_TASK_BYTES, "bytes",
                         why="a task is a small heap object: Task + coroutine frame + waiter future")
        evidence.caveat("resident_per_unit", per["resident"], "<=", MAX_TASK_RESIDENT_PER_UNIT, "bytes",
                        why="a task costs far less than the notes' dozen KB")
    evidence.settle(benchmark, expect="holds-with-caveat")


ARENA_THREADS = min(THREAD_CAP, max(100, 4 * 8 * (os.cpu_count() or 1)))  # well past glibc's cap


@pytest.mark.claim("CO5")
@needs_linux
def test_thread_heap_is_a_shared_lazily_made_malloc_arena(benchmark, evidence):
    """Threads that malloc get glibc arenas of 64 MiB address space each, up to 8 x CPUs, then share."""
    results, one_arena = [], []

    def setup():  # same threads with MALLOC_ARENA_MAX=1: what a thread costs without arenas
        one_arena.append(probe("thread", ARENA_THREADS, env={"MALLOC_ARENA_MAX": "1"}))

    benchmark.group = "CO5 start threads and wait until all are blocked"
    pedantic_self_timed(benchmark, lambda: timed_probe("thread", ARENA_THREADS, results), setup=setup,
                        rounds=MEMORY_ROUNDS)

    out = results[-1]
    if out.get("arenas_created") is None:
        pytest.skip("malloc_info is unavailable: this libc is not glibc, which is where the 64 MB arena comes from")
    record_common(evidence, out, "thread", ARENA_THREADS)
    created = int(_median([r["arenas_created"] for r in results]))
    arena_cap = 8 * out["online_cpus"]  # glibc: 8 x online CPUs on 64-bit (M_ARENA_MAX unset)
    evidence.figure("arenas_created", created, "arenas", samples=[r["arenas_created"] for r in results])
    evidence.figure("glibc_arena_cap", arena_cap, "arenas")
    evidence.figure("arenas_in_use", out["after"]["arenas"], "arenas")
    stack_vms = _median([r["per_unit"]["vms"] for r in one_arena])
    evidence.figure("vms_per_thread_one_arena", stack_vms, "bytes", samples=[r["per_unit"]["vms"] for r in one_arena])
    arena_vms = [(r["after"]["vms"] - r["base"]["vms"] - stack_vms * r["started"]) / max(1, r["arenas_created"])
                 for r in results]
    evidence.figure("vms_per_thread", unit="bytes", samples=[r["per_unit"]["vms"] for r in results])
    evidence.note(f"{ARENA_THREADS} idle Python threads made {created} arenas (cap {arena_cap}): a Python "
                  "thread mallocs as it starts, so arenas appear without user code allocating")
    evidence.support("vms_per_arena", _median(arena_vms), ">=", MIN_ARENA_VMS, "bytes",
                     why="each arena reserves a 64 MiB heap (glibc HEAP_MAX), the notes' '64 MB heap'")
    evidence.caveat("arenas_created", created, "<", ARENA_THREADS, "arenas",
                    why=f"arenas are capped at {arena_cap} and shared: the 64 MB is not per thread, and is reserved")
    evidence.settle(benchmark, expect="holds-with-caveat")


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


@pytest.mark.claim("CO5")
@needs_linux
def test_tasks_cost_far_less_memory_than_threads(benchmark, evidence):
    """Start up to THREAD_CAP threads and TASK_CAP tasks in bounded time; project each ceiling."""
    threads, tasks = [], []

    def setup():
        threads.append(probe("thread", THREAD_CAP))

    benchmark.group = "CO5 start as many units as the budget allows"
    pedantic_self_timed(benchmark, lambda: timed_probe("coroutine", TASK_CAP, tasks), setup=setup, rounds=1)

    th, tk = threads[-1], tasks[-1]
    record_common(evidence, th, "thread+coroutine", THREAD_CAP)
    evidence.condition(thread_cap=THREAD_CAP, task_cap=TASK_CAP, start_budget_s=START_BUDGET_S,
                       overcommit_memory=_read_int("/proc/sys/vm/overcommit_memory"))
    evidence.figure("threads_started", th["started"], "threads")
    evidence.figure("tasks_started", tk["started"], "tasks")
    evidence.figure("thread_start_time", th["seconds"], "s")
    evidence.figure("task_start_time", tk["seconds"], "s")
    evidence.note(f"within {START_BUDGET_S} s, {th['started']} of {THREAD_CAP} threads and {tk['started']} of "
                  f"{TASK_CAP} tasks started; the caps are this suite's bounds, so the ceilings are projections "
                  "from the measured per-unit figures and the kernel limits read now")
    if th["error"]:
        evidence.note(f"thread start failed after {th['started']}: {th['error']}")
    th_res, tk_res = th["per_unit"]["resident"], tk["per_unit"]["resident"]
    evidence.figure("thread_resident_per_unit", th_res, "bytes")
    evidence.figure("task_resident_per_unit", tk_res, "bytes")
    evidence.figure("thread_vms_per_unit", th["per_unit"]["vms"], "bytes")
    evidence.figure("task_vms_per_unit", tk["per_unit"]["vms"], "bytes")
    maps_per_thread = th["per_unit"]["mappings"]
    evidence.figure("mappings_per_thread", maps_per_thread, "mappings")

    import psutil  # the memory the projection may spend: what is available now

    available = psutil.virtual_memory().available
    evidence.figure("memory_available", available, "bytes")
    limits = kernel_thread_limits()
    if "max_map_count" in limits and maps_per_thread > 0:
        limits["max_map_count"] = int(limits["max_map_count"] / maps_per_thread)
    for name, value in limits.items():
        evidence.figure(f"thread_limit_{name}", value, "threads")
    by_limits = min(limits.values())
    by_memory = int(available / th_res)
    thread_ceiling = min(by_limits, by_memory)
    task_ceiling = int(available / tk_res)
    evidence.figure("thread_ceiling_by_memory", by_memory, "threads")
    evidence.figure("thread_ceiling", thread_ceiling, "threads")
    evidence.figure("task_ceiling", task_ceiling, "tasks")
    if _read_int("/proc/sys/vm/overcommit_memory") == 2:
        evidence.note("overcommit_memory=2: each 8 MiB stack is committed, so CommitLimit bounds threads too")

    evidence.support("resident_ratio", th_res / tk_res, ">=", MIN_RESIDENT_RATIO, "x",
                     why="a thread's resident cost (stack pages, thread state) vs a task's heap objects")
    # a projection from the same figures as resident_ratio (never below it), so no check
    evidence.figure("projected_ceiling_ratio", task_ceiling / thread_ceiling, "x (projection: task/thread ceiling)")
    evidence.caveat("thread_ceiling_by_kernel_limits", by_limits, "<", by_memory, "threads",
                    why="the thread ceiling is a kernel count limit (maps, pids), not the 8 MB x N the notes imply")
    evidence.settle(benchmark, expect="holds-with-caveat")
