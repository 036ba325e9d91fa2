"""TH4: Python threads cannot run CPU-bound work in parallel (the GIL).

What is measured: the same CPU work done once sequentially, then split over k threads and
split over k worker processes (the two in alternating order from round to round), so that each
round gives one same-round sample of each under the same machine noise. Rounds continue until
the intervals of the control, of the thread figures and of their opposite worlds have cleared
their threshold, up to MAX_ROUNDS.

How it is decided (harness.stats: the interval of the median over per-round samples):
- thread cores = process CPU seconds / wall while the threads run. The claim predicts one
  core (the threads take turns), its negation min(k, CPUs) cores; the threshold sits halfway;
- thread speedup = sequential wall / threaded wall of the same round: the claim predicts
  about 1 (the sequential speed), its negation about min(k, CPUs); the threshold sits halfway;
- the caveat: hashlib and zlib release the GIL inside C, so the same split of *that* work
  keeps more cores busy and finishes sooner, with the same thresholds from the other side.
The control, in the same rounds: k worker processes on the same work report the CPU time they
used, so process cores = worker CPU seconds / wall. Only when their interval clears the
threshold could threads have kept that many cores busy too; otherwise (other jobs left no CPU
free) the part is not measured here, with the control figures recorded. Each speedup check
likewise decides only when the processes' own speedup cleared its threshold: on a virtual
machine two busy vCPUs may do the same work with more CPU time each, so processes can keep
two cores busy yet finish less than twice as fast, and then no speedup could tell the claim
from its negation (the speedup is then a figure with a note).

The opposite world of the two deciding checks (thread cores and thread speedup), judged by the
same op and threshold, is chosen by the build, since the claim reads the other way on each:
- with the GIL (the claim holds), the same work in k processes, each with its own interpreter
  and GIL: the control's own rounds, so it costs nothing more;
- without it (free-threaded: the claim is refuted), the same k threads pinned to one CPU
  (sched_setaffinity on each thread, before the clock), where they can only take turns as the
  claim says, measured as a third world in the same rounds.
Each check decides only when its opposite lands on the other side. The GIL-releasing test's
checks are caveats, not the claim's deciding checks, and have no opposite world.

At full scale the pure-Python test is a scaling curve (marker scaling, `make scaling`): k = 2, 4,
... up to the CPUs and one oversubscribed point (harness.scale.parallel_counts), each a part with
the same checks, the threshold halfway to min(k, CPUs); each round's sequential run, whose cores
are recorded too (sequential_cores), is the curve's k = 1. reporting/scaling.py draws it.

Known traps: with one CPU nothing can scale and the claim cannot be told apart from its
opposite (needs_two_cpus). On a free-threaded build the catalogue expects the claim refuted.
Threads are started and parked before the clock (harness.parked), the pool's workers have run
a task before the first round. Work sizes keep a round short enough for the quick budget and
long enough to dwarf the thread hand-offs.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor

import pytest

from harness import stats
from harness.environment import cpus_available, gil_enabled
from harness.evidence import Opposite
from harness.measure import measure
from harness.parked import ParkedThreads
from harness.scale import parallel_counts, pick
from harness.skips import needs_two_cpus
from harness.stats import sample_rounds
from harness.timing import replay
from harness.workloads import spin, split

# At full scale a scaling curve: 2, 4, ... up to the CPUs, and one oversubscribed point (make scaling).
WORKERS = pick(quick=(2,), full=parallel_counts(cpus_available()))
WORK_UNITS = pick(quick=1_500_000, full=8_000_000)  # spin() iterations per run, all workers together
MAX_ROUNDS = pick(quick=12, full=30)  # the bound on sampling while an interval straddles its threshold
HASH_BUFFER_BYTES = pick(quick=64 << 20, full=128 << 20)  # long enough to dwarf the threads' start (a few ms)
ZLIB_BUFFER_BYTES = pick(quick=2 << 20, full=4 << 20)
START_METHOD = "fork"  # workers inherit the buffers below instead of receiving copies


def halfway(ideal: int) -> float:
    """Every threshold here: serialised threads keep 1 core busy and run at 1x (the claim);
    parallel ones keep `ideal` = min(k, CPUs) cores and run up to `ideal` x (its negation).
    Halfway between the two predictions, a figure's interval says which one it is near."""
    return (1 + ideal) / 2


_BUFFERS: dict[int, bytes] = {}


def sha256_of(size: int) -> None:
    hashlib.sha256(_BUFFERS[size]).digest()


def compress(size: int) -> None:
    zlib.compress(_BUFFERS[size], 6)


RELEASING_WORK = {"hashlib": (sha256_of, HASH_BUFFER_BYTES), "zlib": (compress, ZLIB_BUFFER_BYTES)}


def cpu_seconds_of(fn, arg) -> float:
    """Run fn(arg) and return the CPU time this thread spent on it (reported back by workers)."""
    t0 = time.thread_time()
    fn(arg)
    return time.thread_time() - t0


def threads_run(fn, shares, pin_to: int | None = None):
    """k parked threads on the shares (started, and pinned to CPU `pin_to` if given, before the clock)."""
    parked = ParkedThreads(fn, [(s,) for s in shares], name="th4")
    try:
        if pin_to is not None:
            for t in parked.threads:
                os.sched_setaffinity(t.native_id, {pin_to})
        return measure(parked.go)
    finally:
        parked.close()


def one_round(pool, fn, shares, reverse: bool, pin_to: int | None) -> dict:
    """Sequential, then k parked threads and k processes on the same shares (in reverse order if `reverse`);
    with `pin_to`, among them the opposite world of a free-threaded build: the k threads pinned to that CPU."""
    one = measure(lambda: [fn(s) for s in shares])
    sequential = one.wall
    out = {"sequential_wall": sequential, "sequential_cores": one.cores}
    worlds = ["threads", "processes"] + (["pinned"] if pin_to is not None else [])
    for world in reversed(worlds) if reverse else worlds:
        if world == "threads":
            threads = threads_run(fn, shares)
            out.update(thread_wall=threads.wall, thread_cores=threads.cores, thread_speedup=sequential / threads.wall)
        elif world == "pinned":
            pinned = threads_run(fn, shares, pin_to)
            out.update(pinned_thread_cores=pinned.cores, pinned_thread_speedup=sequential / pinned.wall)
        else:
            t0 = time.perf_counter()
            worker_cpu = sum(pool.map(cpu_seconds_of, [fn] * len(shares), shares))
            process_wall = time.perf_counter() - t0
            out.update(process_wall=process_wall, process_cores=worker_cpu / process_wall,
                       process_speedup=sequential / process_wall)
    return out


def opposite_keys() -> dict[str, str]:
    """The thread figure -> the figure of its opposite world on this build (see the module's docstring)."""
    if gil_enabled():
        return {"thread_cores": "process_cores", "thread_speedup": "process_speedup"}
    return {"thread_cores": "pinned_thread_cores", "thread_speedup": "pinned_thread_speedup"}


def opposite_label(workers: int) -> str:
    if gil_enabled():
        return f"the same work split over {workers} processes (a GIL each), in the same rounds"
    return (f"free-threaded build: the same {workers} threads pinned to one CPU (sched_setaffinity), "
            "in the same rounds")


def scaling(fn, shares, threshold: float, op: str, opposite: bool = False) -> dict[str, list[float]]:
    """Rounds until the control and the thread figures are decided (op: the claim's side for threads);
    with `opposite`, their opposite worlds' figures too (opposite_keys)."""
    def done(rounds):
        col = {k: [r[k] for r in rounds] for k in rounds[0]}
        if stats.decide(col["process_cores"], ">=", threshold)[0] is False:
            return True  # no room for parallelism: more rounds would not change that
        # thread_cores is the sharp check. The thread speedup is sampled for only where it decides: in the
        # caveat (every caveat check must pass) and only once the processes' own speedup cleared the threshold.
        speedup_open = (op == ">=" and stats.decide(col["process_speedup"], ">=", threshold)[0]
                        and not stats.decided(col["thread_speedup"], op, threshold))
        # The opposite worlds: of thread_cores always, of thread_speedup where that check decides (speedup_check).
        opposite_open = opposite and (
            not stats.decided(col[keys["thread_cores"]], op, threshold)
            or (stats.decide(col["process_speedup"], ">=", threshold)[0]
                and not stats.decided(col[keys["thread_speedup"]], op, threshold)))
        return (stats.decided(col["process_cores"], ">=", threshold)
                and stats.decided(col["thread_cores"], op, threshold) and not speedup_open and not opposite_open)

    keys = opposite_keys()
    pin_to = min(os.sched_getaffinity(0)) if opposite and not gil_enabled() else None
    ctx = multiprocessing.get_context(START_METHOD)
    with ProcessPoolExecutor(len(shares), mp_context=ctx) as pool:
        list(pool.map(fn, shares))  # start the workers before any clock runs
        turn = iter(range(MAX_ROUNDS))
        rounds = sample_rounds(lambda: one_round(pool, fn, shares, next(turn) % 2 == 1, pin_to),
                               max_rounds=MAX_ROUNDS, done=done)
    return {k: [r[k] for r in rounds] for k in rounds[0]}


def record(benchmark, evidence, samples, threshold, opposites: dict[str, str] | None = None) -> None:
    """Figures of every round; not measured here when the processes found no room for parallelism.

    The threads' figures (and, given `opposites`, their opposite world's) are recorded before the
    control, so a part without room still shows what its threads did."""
    replay(benchmark, samples["thread_wall"])
    for name in ("sequential_wall", "thread_wall", "process_wall"):
        evidence.figure(name, unit="s", samples=samples[name])
    evidence.figure("process_speedup", unit="x", samples=samples["process_speedup"])
    evidence.figure("sequential_cores", unit="cores", samples=samples["sequential_cores"])  # a scaling curve's k = 1
    for name, unit in (("thread_cores", "cores"), ("thread_speedup", "x")):
        evidence.figure(name, unit=unit, samples=samples[name])
        if opposites and opposites[name] in samples:
            evidence.figure(f"{name}_opposite", unit=unit, samples=samples[opposites[name]])
    evidence.control("process_cores", op=">=", threshold=threshold, unit="cores", samples=samples["process_cores"],
                     why="other jobs left no CPU free, so threads could not have shown parallelism either")


def speedup_check(evidence, role, samples, op, threshold, why, opposite: Opposite | None = None) -> None:
    """The thread speedup decides only where the processes' speedup showed the opposite was reachable."""
    if stats.decide(samples["process_speedup"], ">=", threshold)[0]:
        evidence.check(role, "thread_speedup", op=op, threshold=threshold, unit="x", why=why,
                       samples=samples["thread_speedup"], opposite=opposite)
    else:
        evidence.figure("thread_speedup", unit="x", samples=samples["thread_speedup"])
        evidence.note(f"thread_speedup decides nothing here: the processes' own speedup did not clear {threshold:.2f}x "
                      "(busy vCPUs run slower), so thread_cores decides alone")


@pytest.mark.claim("TH4")
@pytest.mark.scaling
@needs_two_cpus
@pytest.mark.parametrize("workers", WORKERS, ids=lambda k: f"{k}-workers")
def test_cpu_bound_threads_do_not_scale(benchmark, evidence, workers):
    benchmark.group = "TH4 pure-Python CPU work split over threads"
    threshold = halfway(min(workers, cpus_available()))
    evidence.condition(workers=workers, start_method=START_METHOD, work_units=WORK_UNITS)
    samples = scaling(spin, split(WORK_UNITS, workers), threshold, "<=", opposite=True)
    keys, label = opposite_keys(), opposite_label(workers)
    record(benchmark, evidence, samples, threshold, keys)
    evidence.condition(opposite_world=label)
    evidence.support("thread_cores", op="<=", threshold=threshold, unit="cores", samples=samples["thread_cores"],
                     why="threads take turns on one core while processes kept more busy in the same rounds",
                     opposite=Opposite(label, samples=samples[keys["thread_cores"]]))
    speedup_check(evidence, "support", samples, "<=", threshold,
                  why="threads run at the sequential speed while processes ran faster in the same rounds",
                  opposite=Opposite(label, samples=samples[keys["thread_speedup"]]))
    evidence.settle(benchmark)


@pytest.mark.claim("TH4")
@needs_two_cpus
@pytest.mark.parametrize("work", sorted(RELEASING_WORK))
def test_gil_releasing_work_scales_in_threads(benchmark, evidence, work):
    fn, size = RELEASING_WORK[work]
    benchmark.group = "TH4 GIL-releasing work split over threads"
    threshold = halfway(min(2, cpus_available()))
    evidence.condition(workers=2, start_method=START_METHOD, buffer_bytes=size)
    _BUFFERS[size] = os.urandom(size)  # before the pool forks, so workers share it
    try:
        samples = scaling(fn, [size, size], threshold, ">=")
    finally:
        _BUFFERS.clear()
    record(benchmark, evidence, samples, threshold)
    evidence.caveat("thread_cores", op=">=", threshold=threshold, unit="cores", samples=samples["thread_cores"],
                    why=f"{work} releases the GIL while it works on a buffer, so both threads run at once")
    speedup_check(evidence, "caveat", samples, ">=", threshold, why="and the work finishes sooner")
    evidence.settle(benchmark)
