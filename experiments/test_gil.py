"""TH4: Python threads cannot run CPU-bound work in parallel (the GIL).

What is measured: the same CPU work done once sequentially, split over k threads, and split
over k worker processes, interleaved round by round. The thread run is the benchmark; the
other two are measured in the benchmark's setup, so every round gives one sample of each
under the same machine noise.

How it is decided, from same-run figures only:
- thread speedup = sequential wall / threaded wall stays near 1 for pure-Python work
  (harness.workloads.spin), and thread utilisation = process CPU time / wall stays near one
  core: the threads take turns instead of idling;
- the caveat: hashlib and zlib release the GIL inside C, so the same split of *that* work
  does scale in threads;
- in both, the process run is the control: its workers report the CPU time they used, so
  process cores = worker CPU seconds / wall says whether k CPUs were really free. If they
  were not, the thread figures decide nothing and the test skips with that reason.
The control is CPU accounting rather than the process speedup because on a virtual machine
the speedup of 2 busy vCPUs is only 1.3-1.9x (each does the same work with more CPU time
while the other is busy), while the cores they keep busy still read ~2.
The speedup check is loose (<= MAX_THREAD_SPEEDUP): a vCPU slowed by its host under the
sequential run once made GIL-bound threads look 1.29x faster. CPU accounting is the sharp
check: GIL-bound threads keep 1.00-1.01 cores busy, free-threaded ones would keep ~2.
Speedups compare the best (minimum) wall time of each variant: on a shared machine the
minimum is the run least disturbed by others, and medians are recorded beside them.

Known traps: with one CPU nothing can scale and the claim cannot be told apart from its
opposite, so both halves need two CPUs. On a free-threaded build (no GIL) the expected
verdict of the pure-Python half flips to refuted. Work sizes make one round ~0.1-0.2 s:
long enough to dwarf thread start-up, short enough for the quick run's budget.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor

import pytest

from harness.evidence import cpus_available, gil_enabled
from harness.measure import measure
from harness.scale import pick
from harness.skips import needs_two_cpus
from harness.workloads import spin, split

WORKERS = pick(quick=(2,), full=(2, 4))
WORK_UNITS = pick(quick=2_000_000, full=8_000_000)  # spin() iterations per run, all workers together
ROUNDS = pick(quick=7, full=15)  # best-of-7 keeps the process control clear of passing noise
MAX_THREAD_SPEEDUP = 1.5  # GIL-bound threads measure 0.75-1.05, once 1.29 (a slow vCPU under the sequential run); thread_cores is the sharper check
MAX_THREAD_CORES = 1.3  # one core busy = 1.0; the GIL hand-off adds a little system time
# This VM's 2 vCPUs are shared with its host: 2 busy processes measure 1.58-1.86 cores, so
# the thresholds sit between that and the GIL's one core (threads measure 1.00-1.03).
MIN_CONTROL_CORES = 1.4  # of 2: below this the processes did not get two CPUs: no conclusion
MIN_RELEASING_CORES = 1.3  # GIL-releasing C code in 2 threads keeps 1.45-1.9 cores busy here
MIN_RELEASING_SPEEDUP = 1.25  # and finishes 1.5-1.95x sooner (the VM caps 2 vCPUs below 2x)
HASH_BUFFER_BYTES = pick(quick=32 << 20, full=128 << 20)
ZLIB_BUFFER_BYTES = pick(quick=1 << 20, full=4 << 20)
START_METHOD = "fork"  # workers inherit the buffers below instead of receiving copies


class ParkedThreads:
    """One thread per share, started ahead of the clock and parked until go().

    Thread start-up then stays out of the timed run, as the process pool's does.
    """

    def __init__(self, fn, shares):
        self._gate = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(fn, share)) for share in shares]
        try:
            for t in self._threads:
                t.start()
        except BaseException:
            self.go()
            raise

    def _run(self, fn, share):
        self._gate.wait()
        fn(share)

    def go(self):
        """Release the threads and wait for them all to finish their share."""
        self._gate.set()
        for t in self._threads:
            if t.ident is not None:  # started (join on a thread never started raises)
                t.join()


_BUFFERS: dict[int, bytes] = {}


def sha256_of(size: int) -> None:
    hashlib.sha256(_BUFFERS[size]).digest()


def compress(size: int) -> None:
    zlib.compress(_BUFFERS[size], 6)


def cpu_seconds_of(fn, arg) -> float:
    """Run fn(arg) and return the CPU time this thread spent on it (reported back by workers)."""
    t0 = time.thread_time()
    fn(arg)
    return time.thread_time() - t0


def scaling(benchmark, evidence, fn, shares):
    """Interleaved rounds of fn over `shares`: sequential, in threads (timed), in processes.

    Records the figures and returns (thread speedup, thread cores), or skips when the
    process control shows no parallelism.
    """
    workers = len(shares)
    samples = {"sequential": [], "threads": [], "processes": []}
    worker_cpu: list[float] = []
    parked: list[ParkedThreads] = []
    ctx = multiprocessing.get_context(START_METHOD)
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(fn, shares))  # start the workers before any clock runs

        def in_processes():
            worker_cpu.append(sum(pool.map(cpu_seconds_of, [fn] * workers, shares)))

        def setup():
            samples["sequential"].append(measure(lambda: [fn(s) for s in shares]))
            samples["processes"].append(measure(in_processes))
            parked.append(ParkedThreads(fn, shares))

        def threaded():
            samples["threads"].append(measure(parked[-1].go))

        try:
            benchmark.pedantic(threaded, setup=setup, rounds=ROUNDS)
        finally:
            for threads in parked:  # a round that never ran still has its threads parked
                threads.go()

    best = {name: min(u.wall for u in us) for name, us in samples.items()}
    for name, us in samples.items():
        evidence.figure(f"{name}_wall", unit="s", samples=[u.wall for u in us])
    evidence.condition(workers=workers, start_method=START_METHOD)
    speedup = evidence.figure("process_speedup", best["sequential"] / best["processes"], unit="x")
    control = evidence.figure("process_cores", unit="cores",
                              samples=[cpu / u.wall for cpu, u in zip(worker_cpu, samples["processes"])])
    needed = MIN_CONTROL_CORES * min(workers, cpus_available()) / 2  # thresholds are per 2 CPUs
    if control < needed:
        pytest.skip(
            f"{workers} processes kept only {control:.2f} cores busy (needs {needed:.2f}): other jobs left "
            "no CPU free, so the thread figures cannot decide TH4"
        )
    cores = evidence.figure("thread_cores", unit="cores", samples=[u.cores for u in samples["threads"]])
    return best["sequential"] / best["threads"], cores, (speedup, control)


@pytest.mark.claim("TH4")
@needs_two_cpus
@pytest.mark.parametrize("workers", WORKERS, ids=lambda k: f"{k}-workers")
def test_cpu_bound_threads_do_not_scale(benchmark, evidence, workers):
    benchmark.group = "TH4 pure-Python CPU work split over threads"
    speedup, cores, (process_speedup, process_cores) = scaling(benchmark, evidence, spin, split(WORK_UNITS, workers))
    evidence.condition(work_units=WORK_UNITS)
    evidence.support(
        "thread_speedup", speedup, "<=", MAX_THREAD_SPEEDUP, "x",
        why=f"processes reached {process_speedup:.2f}x ({process_cores:.2f} cores) on the same work in the same rounds",
    )
    evidence.support("thread_cores", cores, "<=", MAX_THREAD_CORES, "cores", why="threads take turns on one core")
    # Without a GIL the claim is false: CPU-bound threads scale.
    evidence.settle(benchmark, expect="holds" if gil_enabled() else "refuted")


RELEASING_WORK = {"hashlib": (sha256_of, HASH_BUFFER_BYTES), "zlib": (compress, ZLIB_BUFFER_BYTES)}


@pytest.mark.claim("TH4")
@needs_two_cpus
@pytest.mark.parametrize("work", sorted(RELEASING_WORK))
def test_gil_releasing_work_scales_in_threads(benchmark, evidence, work):
    fn, size = RELEASING_WORK[work]
    _BUFFERS[size] = os.urandom(size)  # before the pool forks, so workers share it
    benchmark.group = "TH4 GIL-releasing work split over threads"
    try:
        speedup, cores, (process_speedup, _) = scaling(benchmark, evidence, fn, [size, size])
    finally:
        _BUFFERS.clear()
    evidence.condition(buffer_bytes=size)
    evidence.caveat(
        "thread_cores", cores, ">=", MIN_RELEASING_CORES, "cores",
        why=f"{work} releases the GIL while it works on a buffer, so both threads run at once",
    )
    evidence.caveat(
        "thread_speedup", speedup, ">=", MIN_RELEASING_SPEEDUP, "x",
        why=f"and the work finishes sooner; processes reached {process_speedup:.2f}x on it",
    )
    evidence.settle(benchmark, expect="holds-with-caveat")
