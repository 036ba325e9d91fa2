"""PR4: several processes run CPU work truly in parallel.

What is measured: TH4's pure-Python CPU work (harness.workloads.spin), done once in this
process and split over k worker processes, interleaved round by round: the pool run is the
benchmark, the sequential run is measured in its setup. The workers are started (and have
run a task) before any clock. CPU accounting per pool run:
- worker cores = CPU seconds the tasks used / wall. Each task reads its own process_time
  (exact to the ns): Meter(children=True) sees nothing of pool workers, which are never
  reaped, and psutil's per-process times tick at 10 ms;
- room = worker cores + the cores that stood idle meanwhile on the CPUs we may use
  (/proc/stat): how much CPU the machine had for us at all.

How it is decided, from same-run figures, over the rounds in which the machine had room for
more than one core (room >= MIN_ROOM_CORES; at least MIN_ROUNDS_WITH_ROOM of them):
- share of room used = worker cores / min(k, room) >= MIN_SHARE_OF_ROOM: the workers kept as
  many CPUs busy at once as there were free. Serialised workers use at most one core, so they
  score <= 1 / MIN_ROOM_CORES (0.77); parallel ones measure 0.95-1.0, also when a neighbour
  takes part of a CPU (then room shrinks with what the workers get);
- speedup = sequential wall / pool wall >= MIN_SPEEDUP, checked over the rounds in which the
  machine was free (room >= MIN_FREE_FRACTION * min(k, CPUs)), when there are enough of them:
  only then does the wall clock compare like with like;
- with k above the CPUs available, speedup <= MAX_OVER_CPUS * CPUs: capped by the CPUs.
side_by_side_cpu_cost (worker CPU-seconds / sequential CPU-seconds for the same work) and
steal_cores are recorded to explain a speedup short of min(k, CPUs): on this KVM guest each
vCPU sometimes does the same work more slowly while the other one is busy too (host-level
sharing), so the speedup ranges 1.3-1.9x on 2 vCPUs though both stay fully busy.

Known traps: this machine is shared. When other jobs keep the CPUs busy, k workers get a
fair share of a core or so and nothing can look parallel (nor serial); the room figure shows
that, and without enough rounds with room the test skips with the figure instead of calling
the claim. On one CPU there is nothing to show (needs_two_cpus). /proc/stat counts in 10 ms
ticks, so rounds last 0.2 s or more (+-5% on room). The work goes out in CHUNKS_PER_WORKER
tasks per worker, so a worker slowed by a neighbour does not leave the other CPU idle at the
end. Start methods differ only in how workers start, outside the clock; the full run sweeps them.
"""
from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import psutil
import pytest

from harness.measure import measure
from harness.scale import pick
from harness.skips import needs_two_cpus
from harness.workloads import spin, split

WORKERS = pick(quick=(2,), full=(2, 4))
START_METHODS = pick(quick=("fork",), full=("fork", "forkserver", "spawn"))
WORK_UNITS = pick(quick=6_000_000, full=12_000_000)  # spin() iterations per run: ~0.4 s alone here
# Many small tasks per worker, so that a worker slowed by a neighbour does not leave the others
# idle at the end (idle time would count as room the workers failed to use).
CHUNKS_PER_WORKER = 8
ROUNDS = pick(quick=8, full=12)  # several, so that some find the shared machine with room
MIN_ROOM_CORES = 1.3  # a round decides only if the machine had room for more than one core
MIN_ROUNDS_WITH_ROOM = 2
MIN_SHARE_OF_ROOM = 0.85  # parallel workers measure 0.95-1.0 of the room; serialised ones <= 0.77
MIN_FREE_FRACTION = 0.9  # the wall-clock speedup is checked on rounds with ~min(k, CPUs) cores free
MIN_SPEEDUP = 1.15  # 2 workers on 2 free vCPUs measure 1.28-1.9x; serialised ones <= 1.0
MAX_OVER_CPUS = 1.2  # k > CPUs: the speedup stays at or under the CPU count


def timed_spin(iterations: int) -> float:
    """spin() in a worker; returns the CPU seconds it took there (for the CPU accounting)."""
    t0 = time.process_time()
    spin(iterations)
    return time.process_time() - t0


def idle_and_steal(cpus) -> tuple[float, float]:
    """Seconds the given CPUs have stood idle (or waited on I/O), and had stolen by the host."""
    per_cpu = psutil.cpu_times(percpu=True)
    mine = [per_cpu[c] for c in cpus if c < len(per_cpu)]
    idle = sum(t.idle + getattr(t, "iowait", 0.0) for t in mine)
    return idle, sum(getattr(t, "steal", 0.0) for t in mine)


@pytest.mark.claim("PR4")
@needs_two_cpus
@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize("workers", WORKERS, ids=lambda k: f"{k}-workers")
def test_cpu_bound_processes_run_in_parallel(benchmark, evidence, workers, start_method):
    shares = split(WORK_UNITS, workers * CHUNKS_PER_WORKER)
    cpus = sorted(os.sched_getaffinity(0))
    ideal = min(workers, len(cpus))
    rounds = {name: [] for name in ("sequential", "sequential_cpu", "wall", "cpu", "room", "steal")}
    ctx = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(spin, [1] * workers))  # start every worker before any clock runs

        def setup():
            alone = measure(spin, WORK_UNITS)
            rounds["sequential"].append(alone.wall)
            rounds["sequential_cpu"].append(alone.cpu)

        def in_processes():
            idle0, steal0 = idle_and_steal(cpus)
            t0 = time.perf_counter()
            cpu = sum(pool.map(timed_spin, shares))
            wall = time.perf_counter() - t0
            idle1, steal1 = idle_and_steal(cpus)
            rounds["wall"].append(wall)
            rounds["cpu"].append(cpu)
            rounds["room"].append((cpu + idle1 - idle0) / wall)
            rounds["steal"].append((steal1 - steal0) / wall)

        benchmark.group = "PR4 pure-Python CPU work split over processes"
        benchmark.pedantic(in_processes, setup=setup, rounds=ROUNDS)

    evidence.condition(workers=workers, start_method=start_method, work_units=WORK_UNITS, ideal_speedup=ideal)
    evidence.figure("sequential_wall", unit="s", samples=rounds["sequential"])
    evidence.figure("process_wall", unit="s", samples=rounds["wall"])
    evidence.figure("worker_cores", unit="cores", samples=[c / w for c, w in zip(rounds["cpu"], rounds["wall"])])
    evidence.figure("room_cores", unit="cores", samples=rounds["room"])
    evidence.figure("steal_cores", unit="cores", samples=rounds["steal"])
    roomy = [i for i, room in enumerate(rounds["room"]) if room >= MIN_ROOM_CORES]
    free = [i for i in roomy if rounds["room"][i] >= MIN_FREE_FRACTION * ideal]
    evidence.figure("rounds_with_room", len(roomy), "rounds")
    evidence.figure("rounds_free", len(free), "rounds")
    if len(roomy) < MIN_ROUNDS_WITH_ROOM:
        pytest.skip(
            f"{len(roomy)} of {ROUNDS} rounds had {MIN_ROOM_CORES} cores free for the workers "
            f"(best: {max(rounds['room']):.2f}; {MIN_ROUNDS_WITH_ROOM} needed): "
            "other jobs kept the CPUs busy, so parallelism could not show"
        )
    share = statistics.median(
        rounds["cpu"][i] / rounds["wall"][i] / min(workers, rounds["room"][i]) for i in roomy
    )
    evidence.support(
        "share_of_room_used", share, ">=", MIN_SHARE_OF_ROOM, "",
        why=f"worker CPU-seconds per wall second over the cores free for them, in {len(roomy)} rounds with room",
    )
    compared = free if len(free) >= MIN_ROUNDS_WITH_ROOM else roomy
    speedup = statistics.median(rounds["sequential"][i] / rounds["wall"][i] for i in compared)
    evidence.figure(
        "side_by_side_cpu_cost", statistics.median(rounds["cpu"][i] / rounds["sequential_cpu"][i] for i in roomy), "x"
    )
    if compared is free:
        evidence.support(
            "speedup", speedup, ">=", MIN_SPEEDUP, "x",
            why=f"median over {len(free)} rounds with the CPUs free; min({workers} workers, {len(cpus)} CPUs) = {ideal}",
        )
    else:
        evidence.figure("speedup", speedup, "x")
        evidence.note(
            f"speedup not checked: only {len(free)} rounds had {MIN_FREE_FRACTION * ideal:.1f} cores free, "
            "so sequential and pool runs met different neighbours"
        )
    if workers > len(cpus):
        evidence.support(
            "speedup_capped_by_cpus", speedup, "<=", MAX_OVER_CPUS * len(cpus), "x",
            why=f"{workers} workers share {len(cpus)} CPUs",
        )
    evidence.settle(benchmark)
