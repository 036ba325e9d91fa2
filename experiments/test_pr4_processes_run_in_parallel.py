"""PR4: several processes run CPU work truly in parallel (and many make progress at once).

The notes' sentence (进程, item 5: processes "allow high concurrency") has two readings, one part each:
- CPU work truly in parallel: test_cpu_bound_processes_run_in_parallel, below;
- high concurrency, many processes making progress at once: test_many_processes_wait_together,
  at the end of this docstring.

What is measured: TH4's pure-Python CPU work (harness.workloads.spin), done once in this
process and then split over k worker processes, in every round. The workers are started (and
have run a task) before any clock. CPU accounting per pool run:
- worker cores = CPU seconds the tasks used / wall. Each task reads its own process_time
  (exact to the ns): Meter(children=True) sees nothing of pool workers, which are never
  reaped, and psutil's per-process times tick at 10 ms;
- room = worker cores + the cores that stood idle meanwhile on the CPUs we may use
  (/proc/stat): how much CPU the machine had for us at all.

How it is decided (harness.stats: the interval of the median over per-round samples, rounds
taken until every interval clears its threshold, up to MAX_ROUNDS):
- worker cores: the claim predicts min(k, CPUs), its negation (processes that take turns) one
  core; the threshold sits halfway;
- speedup = sequential wall / pool wall of the same round, a figure: serialised workers can never
  beat the sequential run, parallel ones finish sooner (up to min(k, CPUs) times);
- the control is the room: only when the machine had more free cores than the worker-cores
  threshold could the workers have shown parallelism (or failed to). When the room's
  interval does not clear it (other jobs keep the CPUs busy), the part is not measured here,
  with the room figures recorded.

The opposite world, in every round (the order of the two pools alternates from round to
round): a second pool of k workers, each pinned to one and the same CPU (sched_setaffinity in
its initializer), so that the processes can only take turns. It runs the first
OPPOSITE_CHUNKS_PER_WORKER shares per worker (a quarter of the work, to cost little); its
speedup is the sequential run's time for those very shares (each share is timed within the
sequential run) over its wall. Judged by the same threshold, it predicts 1 core (and a speedup
of at most 1, a figure); the check decides only when it lands on the other side.

side_by_side_cpu_cost (worker CPU-seconds / sequential CPU-seconds for the same work) and
steal_cores are recorded to explain a speedup short of min(k, CPUs): on a virtual machine a
vCPU may do the same work more slowly while its sibling is busy too (host-level sharing).

Known traps: on one CPU there is nothing to show (needs_two_cpus). /proc/stat counts in 10 ms
ticks, so a round lasts 0.2 s or more. The work goes out in CHUNKS_PER_WORKER tasks per worker,
so a worker slowed by a neighbour does not leave the other CPU idle at the end. Start methods
differ only in how workers start, outside the clock; the full run sweeps them. The speedup
(sequential wall / pool wall) is a figure, not a check: judged against 1 it sat on the negation's
own prediction (processes taking turns finish about when the sequential run does), so the pinned
opposite world straddled it; judged against the midpoint of 1 and min(k, CPUs) the claim's own
interval straddled that, because a VM's vCPUs can change speed from round to round (the same
share of work taking one of two quite different times) and a wall-clock ratio carries that. CPU
accounting (worker cores) does not.

High concurrency (test_many_processes_wait_together): N forked processes (WAITERS), started and
ready before any clock, each make one blocking wait per round: a recv on its own socketpair,
whose peer (this process) writes L (BLOCK_S) after that process said it was about to block. The
claim predicts that the N waits overlap, so the round takes about L: wall / L judged against the
upper end of harness.thresholds.about(1) (2, "about one wait"), as TH5 judges threads. The
opposite world, in every round (the order of the two alternates): the same N processes make the
same wait while each holds one shared multiprocessing.Lock around it, so each waits only once
the previous one is done: wall / L' reads N or a little more (each hand-off adds wake-ups),
judged by the same threshold. Its L' (OPPOSITE_BLOCK_S) is short, since its waits add up, yet
many times a process's wake-up and lock hand-off, so that wall / L' still counts waits.
blocked_at_once (the most processes that had announced their recv and not yet been written to,
at one time) shows the overlap directly: N against 1. One CPU is enough (blocked processes need
no core). Every child is ended at the end of the test, failures included: told to exit, then
terminated, then killed.
"""
from __future__ import annotations

import heapq
import multiprocessing
import os
import selectors
import socket
import time
from concurrent.futures import ProcessPoolExecutor

import psutil
import pytest

from harness import stats
from harness.evidence import Opposite
from harness.measure import measure
from harness.scale import pick
from harness.skips import needs_two_cpus
from harness.stats import sample_rounds
from harness.thresholds import about
from harness.timing import replay
from harness.workloads import spin, split

WORKERS = pick(quick=(2,), full=(2, 4))
START_METHODS = pick(quick=("fork",), full=("fork", "forkserver", "spawn"))
WORK_UNITS = pick(quick=4_000_000, full=12_000_000)  # spin() iterations per run, all workers together
# Many small tasks per worker, so that a worker slowed by a neighbour does not leave the others
# idle at the end (idle time would count as room the workers failed to use).
CHUNKS_PER_WORKER = 8
# The opposite world (workers pinned to one CPU) runs this many of each worker's shares: a quarter of the
# work. Its predictions (1 core, a speedup of at most 1) do not depend on how much work it is given.
OPPOSITE_CHUNKS_PER_WORKER = 2
MAX_ROUNDS = pick(quick=8, full=20)  # the bound on sampling while an interval straddles its threshold

# High concurrency: N processes each blocked for L at once.
WAITERS = pick(quick=32, full=128)  # N
BLOCK_S = 0.03  # L: long beside waking N processes (tens of µs each)
# The opposite world's L': its N waits in turn add up (N x L'), so it is short, yet many times a
# process's wake-up and lock hand-off, so that wall / L' still counts waits.
OPPOSITE_BLOCK_S = 0.002
# wall / L. Overlapping waits predict about 1 (plus waking N processes); waits in turn predict N.
# Rule: harness.thresholds.about(1), whose upper end is 2 (as TH5's for threads).
MAX_WALL_OVER_L = about(1.0)[1]
WAIT_ROUNDS = pick(quick=8, full=20)  # the bound on sampling while an interval straddles its threshold
WAIT_TIMEOUT_S = 10  # a round whose children stop answering fails instead of hanging


def cores_threshold(ideal: int) -> float:
    """Serialised workers keep 1 core busy (the negation), parallel ones min(k, CPUs) (the claim): halfway."""
    return (1 + ideal) / 2


def timed_spin(iterations: int) -> float:
    """spin() in a worker; returns the CPU seconds it took there (for the CPU accounting)."""
    t0 = time.process_time()
    spin(iterations)
    return time.process_time() - t0


def pin_to(cpu: int) -> None:
    """The opposite world's pool initializer: this worker may run on `cpu` only."""
    os.sched_setaffinity(0, {cpu})


def idle_and_steal(cpus) -> tuple[float, float]:
    """Seconds the given CPUs have stood idle (or waited on I/O), and had stolen by the host."""
    per_cpu = psutil.cpu_times(percpu=True)
    mine = [per_cpu[c] for c in cpus if c < len(per_cpu)]
    return sum(t.idle + getattr(t, "iowait", 0.0) for t in mine), sum(getattr(t, "steal", 0.0) for t in mine)


def sequential(shares) -> tuple[float, float, list[float]]:
    """spin() over every share in this process: (wall, CPU seconds, each share's wall)."""
    walls: list[float] = []

    def run():
        for share in shares:
            t0 = time.perf_counter()
            spin(share)
            walls.append(time.perf_counter() - t0)

    alone = measure(run)
    return alone.wall, alone.cpu, walls


def pool_run(pool, shares) -> tuple[float, float]:
    """The shares over the pool's workers: (wall, CPU seconds the tasks used)."""
    t0 = time.perf_counter()
    cpu = sum(pool.map(timed_spin, shares))
    return time.perf_counter() - t0, cpu


def one_round(pool, pinned, shares, cpus, pinned_first: bool) -> dict:
    alone_wall, alone_cpu, share_walls = sequential(shares)
    few = shares[:len(shares) * OPPOSITE_CHUNKS_PER_WORKER // CHUNKS_PER_WORKER]
    out: dict = {}
    for world in (("pinned", "parallel") if pinned_first else ("parallel", "pinned")):
        if world == "pinned":
            wall, cpu = pool_run(pinned, few)
            out.update(pinned_worker_cores=cpu / wall, pinned_speedup=sum(share_walls[:len(few)]) / wall)
            continue
        idle0, steal0 = idle_and_steal(cpus)
        wall, cpu = pool_run(pool, shares)
        idle1, steal1 = idle_and_steal(cpus)
        out.update(process_wall=wall, worker_cores=cpu / wall, room_cores=(cpu + idle1 - idle0) / wall,
                   steal_cores=(steal1 - steal0) / wall, speedup=alone_wall / wall,
                   side_by_side_cpu_cost=cpu / alone_cpu)
    return {"sequential_wall": alone_wall, **out}


def measure_pool(workers: int, start_method: str, cores: float) -> dict[str, list[float]]:
    """Rounds of sequential-then-both-pools until room and worker cores are decided in both worlds
    (or there is no room)."""
    cpus = sorted(os.sched_getaffinity(0))

    def done(rounds):
        col = {k: [r[k] for r in rounds] for k in rounds[0]}
        if stats.decide(col["room_cores"], ">=", cores)[0] is False:
            return True  # no room for parallelism: more rounds would not change that
        return (stats.decided(col["room_cores"], ">=", cores)
                and all(stats.decided(col[f"{w}worker_cores"], ">=", cores) for w in ("", "pinned_")))

    shares = split(WORK_UNITS, workers * CHUNKS_PER_WORKER)
    ctx = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool, \
            ProcessPoolExecutor(workers, mp_context=ctx, initializer=pin_to, initargs=(cpus[0],)) as pinned:
        for each in (pool, pinned):
            list(each.map(spin, [1] * workers))  # start every worker before any clock runs
        turn = iter(range(MAX_ROUNDS))
        rounds = sample_rounds(lambda: one_round(pool, pinned, shares, cpus, next(turn) % 2 == 1),
                               max_rounds=MAX_ROUNDS, done=done)
    return {k: [r[k] for r in rounds] for k in rounds[0]}


@pytest.mark.claim("PR4")
@needs_two_cpus
@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize("workers", WORKERS, ids=lambda k: f"{k}-workers")
def test_cpu_bound_processes_run_in_parallel(benchmark, evidence, workers, start_method):
    cpus = len(os.sched_getaffinity(0))
    ideal = min(workers, cpus)
    cores = cores_threshold(ideal)
    evidence.condition(workers=workers, start_method=start_method, work_units=WORK_UNITS, ideal_speedup=ideal)
    samples = measure_pool(workers, start_method, cores)
    benchmark.group = "PR4 pure-Python CPU work split over processes"
    replay(benchmark, samples["process_wall"])
    for name in ("sequential_wall", "process_wall"):
        evidence.figure(name, unit="s", samples=samples[name])
    for name in ("steal_cores", "side_by_side_cpu_cost"):
        evidence.figure(name, unit="cores" if name.endswith("cores") else "x", samples=samples[name])
    # Both worlds' figures before the control, so a part without room still shows what its workers did.
    evidence.figure("worker_cores", unit="cores", samples=samples["worker_cores"])
    evidence.figure("worker_cores_opposite", unit="cores", samples=samples["pinned_worker_cores"])
    # The speedup is a figure: a VM's vCPUs can change speed from round to round, which the wall-clock
    # ratio carries and CPU accounting does not, so it cannot decide here (see the docstring).
    evidence.figure("speedup", unit="x", samples=samples["speedup"])
    evidence.figure("speedup_opposite", unit="x", samples=samples["pinned_speedup"])
    evidence.control("room_cores", op=">=", threshold=cores, unit="cores", samples=samples["room_cores"],
                     why="other jobs kept the CPUs busy (room: worker cores + idle CPU), so parallelism could not show")
    pinned = (f"a second pool of {workers} workers, all pinned to one CPU (sched_setaffinity), "
              f"{OPPOSITE_CHUNKS_PER_WORKER} of the {CHUNKS_PER_WORKER} shares per worker, interleaved rounds")
    evidence.support("worker_cores", op=">=", threshold=cores, unit="cores", samples=samples["worker_cores"],
                     why=f"{workers} workers on {cpus} CPUs keep that many busy at once, not one after another",
                     opposite=Opposite(pinned, samples=samples["pinned_worker_cores"]))
    if workers > cpus:
        evidence.figure("speedup_over_cpus", stats.median(samples["speedup"]) / cpus, "x")
    evidence.settle(benchmark)


def _waiter(i: int, pairs, turn) -> None:
    """A child: per round, one blocking recv (b"t": at once with the others; b"q": holding `turn`)."""
    mine = pairs[i][1]
    for j, (parent_end, child_end) in enumerate(pairs):  # inherited by fork: keep only this child's end
        parent_end.close()
        if j != i:
            child_end.close()
    try:
        mine.sendall(b"h")
        while (command := mine.recv(1)) in (b"t", b"q"):
            in_turn = command == b"q"
            if in_turn and not turn.acquire(timeout=WAIT_TIMEOUT_S):
                return
            try:
                mine.sendall(b"w")  # about to block: the parent writes L from now
                if mine.recv(1) != b"d":
                    return
            finally:
                if in_turn:
                    turn.release()
            mine.sendall(b"k")
    except OSError:  # the parent closed its end (a failed round): nothing left to wait for
        return


class WaitingProcesses:
    """N forked children, each on its own socketpair, started and ready before any clock; close() ends them all."""

    def __init__(self, n: int):
        ctx = multiprocessing.get_context("fork")
        self.turn = ctx.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.procs: list = []
        self.selector = selectors.SelectSelector()  # a timeout in µs (epoll's is in ms)
        try:
            for _ in range(n):
                self.pairs.append(socket.socketpair())
            for i in range(n):
                proc = ctx.Process(target=_waiter, args=(i, self.pairs, self.turn), name=f"pr4-waiter-{i}", daemon=True)
                proc.start()
                self.procs.append(proc)
            for i, (parent_end, child_end) in enumerate(self.pairs):
                child_end.close()
                self.selector.register(parent_end, selectors.EVENT_READ, i)
            deadline = time.perf_counter() + WAIT_TIMEOUT_S
            for parent_end, _ in self.pairs:
                parent_end.settimeout(max(0.0, deadline - time.perf_counter()))
                if parent_end.recv(1) != b"h":
                    raise ChildProcessError("a waiter did not start")
                parent_end.settimeout(None)
        except BaseException:
            self.close()
            raise

    def round(self, command: bytes, block_s: float) -> tuple[float, int]:
        """Every child waits once (b"t" or b"q"), block_s after it said it blocks: (wall s, most blocked at once)."""
        n = len(self.pairs)
        due: list[tuple[float, int]] = []  # (when to write, child)
        blocked = most = finished = 0
        t0 = time.perf_counter()
        deadline = t0 + WAIT_TIMEOUT_S
        for parent_end, _ in self.pairs:
            parent_end.sendall(command)
        while finished < n:
            now = time.perf_counter()
            while due and due[0][0] <= now:
                _, i = heapq.heappop(due)
                self.pairs[i][0].sendall(b"d")
                blocked -= 1
            if now > deadline:
                raise TimeoutError(f"{finished} of {n} waiters finished within {WAIT_TIMEOUT_S} s")
            wait = min(due[0][0], deadline) - now if due else deadline - now
            for key, _ in self.selector.select(timeout=max(0.0, wait)):
                data = key.fileobj.recv(64)
                if not data:
                    raise ChildProcessError(f"waiter {key.data} exited (exit code {self.procs[key.data].exitcode})")
                for byte in data:
                    if byte == ord("w"):
                        heapq.heappush(due, (time.perf_counter() + block_s, key.data))
                        blocked += 1
                        most = max(most, blocked)
                    elif byte == ord("k"):
                        finished += 1
        return time.perf_counter() - t0, most

    def close(self) -> None:
        self.selector.close()
        for parent_end, child_end in self.pairs:
            try:
                parent_end.sendall(b"x")
            except OSError:
                pass
            parent_end.close()
            child_end.close()
        deadline = time.monotonic() + 5
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for stop in ("terminate", "kill"):
            alive = [p for p in self.procs if p.is_alive()]
            for proc in alive:
                getattr(proc, stop)()
            for proc in alive:
                proc.join(timeout=2)
        if any(p.is_alive() for p in self.procs):
            raise ChildProcessError("a waiter outlived SIGKILL")


def wait_rounds(waiters: WaitingProcesses) -> list[dict]:
    """Rounds of both worlds (alternating which goes first) until both wall / L intervals are decided."""
    def one_round():
        worlds = [("together", b"t", BLOCK_S), ("in_turn", b"q", OPPOSITE_BLOCK_S)]
        out = {}
        for name, command, block_s in (worlds if len(made) % 2 == 0 else worlds[::-1]):
            wall, most = waiters.round(command, block_s)
            out[name] = {"wall": wall, "wall_over_L": wall / block_s, "blocked_at_once": most}
        made.append(None)
        return out

    def done(rounds):
        return all(stats.decided([r[w]["wall_over_L"] for r in rounds], "<=", MAX_WALL_OVER_L)
                   for w in ("together", "in_turn"))

    made: list = []
    return sample_rounds(one_round, max_rounds=WAIT_ROUNDS, done=done)


@pytest.mark.claim("PR4")
@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="forks its waiters")
def test_many_processes_wait_together(benchmark, evidence):
    benchmark.group = "PR4 N processes each blocked for L"
    evidence.condition(n=WAITERS, blocker="socket_recv", block_s=BLOCK_S, opposite_block_s=OPPOSITE_BLOCK_S,
                       start_method="fork")
    waiters = WaitingProcesses(WAITERS)
    try:
        rounds = wait_rounds(waiters)
    finally:
        waiters.close()
    together, in_turn = ([r[w] for r in rounds] for w in ("together", "in_turn"))
    replay(benchmark, [r["wall"] for r in together])
    evidence.figure("wall", unit="s", samples=[r["wall"] for r in together])
    evidence.figure("blocked_at_once", unit="processes", samples=[r["blocked_at_once"] for r in together])
    evidence.figure("blocked_at_once_opposite", unit="processes", samples=[r["blocked_at_once"] for r in in_turn])
    in_turn_world = (f"the same {WAITERS} processes each blocked in recv for {OPPOSITE_BLOCK_S * 1000:g} ms while "
                     "holding one shared multiprocessing.Lock (waits in turn), interleaved rounds")
    evidence.support("wall_over_L", op="<=", threshold=MAX_WALL_OVER_L, unit="x",
                     samples=[r["wall_over_L"] for r in together],
                     why=f"{WAITERS} processes blocked in recv at once: their waits of L overlap "
                     f"(in turn they would take {WAITERS}x)",
                     opposite=Opposite(in_turn_world, samples=[r["wall_over_L"] for r in in_turn]))
    evidence.settle(benchmark)
