"""TH5: when a thread blocks on I/O, the operating system runs another thread.

What is measured: N threads are started and parked (harness.parked) before any clock runs.
The timed block releases them; each then blocks for L seconds (block_s(N): longer for large
N, so that waking them all stays short beside L) in one of two ways, and the block ends when
the last thread has been joined:

- ``sleep``: time.sleep(L), the simplest blocking call;
- ``socket_recv``: recv() on its own socketpair, whose peer the main thread writes one byte
  to after L, so every thread sits in a real blocking read until then.

Why this method: if a blocked thread kept the others from running, the N waits would queue
up and take N*L; if the kernel parks blocked threads and runs the others, all N waits
overlap and the block takes about L. The waiting threads' CPU time (each one's own CPU
clock, summed) tells "blocked and idle" apart from "busy waiting". The control, once per module: a few
threads that block for L inside a call that keeps the GIL (libc usleep through
ctypes.PyDLL, as a C extension that forgets to release it would) do take turns, so wall / L
reads the opposite outcome when blocking does stop the others.

How it is decided, per round and by the interval of the median: wall / L below a threshold
between 1 (overlap) and N (in turn), and CPU seconds / wall seconds near zero cores over the
window in which all N threads are blocked. Each thread records how long it was blocked, so
the overlap (sum of blocked thread-time / wall) is shown next to N.

The opposite worlds, in every round beside the claim's (the order of the three alternates
from round to round), judged by the same op and threshold; each check decides only when its
opposite lands on the other side:
- for wall_over_L, waits taken in turn: OPPOSITE_THREADS threads make the same blocking call
  (sleep, or recv on a socketpair whose peer writes L after that thread began its recv), each
  holding one shared lock around it, so each waits only once the previous one is done;
- for cores_while_blocked, a waiter that keeps the CPU: POLLING_THREADS thread spins on
  os.sched_yield() until L has passed (sleep) or busy-polls its socket with recv(MSG_DONTWAIT)
  until the byte is there (socket_recv), over the same window as the claim's threads. Both
  calls return at once and release the GIL, so the main thread opens and closes the window on
  time (beside a pure-Python spin it would first wait a switch interval for the GIL).
Both run with a short L (OPPOSITE_BLOCK_S) and a few threads, whatever N: their predictions
(OPPOSITE_THREADS x L; about a core) do not depend on N, and the waits in turn add up.

Known traps: waking N threads costs a little each (they retake the GIL one by one), so
wall / L grows a little with N and the whole block is not CPU-free; that cost is shown as
cores_whole_block, while the check covers only the all-blocked window. Thread creation is
outside the timer (setup). One CPU is enough: blocked threads need no core. The process clock
under-reads a thread that runs on another CPU without ever switching (see waiting_cpu_seconds):
over this few-millisecond window it made the busy-polling opposite world read as idle on the
free-threaded build, so the window's CPU is read from the waiting threads' own clocks.
"""
from __future__ import annotations

import ctypes
import os
import queue
import socket
import threading
import time

import pytest

from harness import environment, stats
from harness.evidence import Opposite
from harness.parked import ParkedThreads
from harness.scale import pick
from harness.stats import sample_rounds
from harness.thresholds import IDLE_CORES, about
from harness.timing import replay

THREADS = pick(quick=(10, 100), full=(10, 100, 1000))
BLOCK_S = 0.03  # L: how long each thread stays blocked, at least
# L grows with N beyond 50, so waking N threads stays short beside L: on the free-threaded build, releasing
# 100 parked threads and joining them again took a good part of BLOCK_S beyond the wait itself, which beside
# L = BLOCK_S read as waits that only half overlap.
BLOCK_S_PER_THREAD = 0.0006
# Rounds are added while an interval straddles its threshold (e.g. a short opposite window in which a loaded
# machine preempted the poller), up to MAX_ROUNDS; 12 is the first look whose interval drops an outlier.
MAX_ROUNDS = pick(quick=12, full=20)
# wall / L. Overlapping waits predict about 1 (plus waking the threads); waits in turn predict N,
# at least 10 here. Rule: harness.thresholds.about(1), whose upper end is 2.
MAX_WALL_OVER_L = about(1.0)[1]
# CPU cores busy while all N threads are blocked. Blocked in the kernel predicts ≈ 0; a wait that
# keeps a thread running (busy waiting, the GIL held) predicts 1 or more. Rule: IDLE_CORES.
MAX_CORES_WHILE_BLOCKED = IDLE_CORES
CONTROL_THREADS = 6  # in turn, they predict wall / L = 6: three times MAX_WALL_OVER_L
CONTROL_BLOCK_S = 0.01  # the control's L: its waits add up, so it is kept short
# The opposite worlds. Waits in turn predict wall / L = their number: 4 lies as far above MAX_WALL_OVER_L
# (2) as overlapping waits (1) lie below it. One waiter that keeps the CPU already predicts a whole core.
OPPOSITE_THREADS = 4
POLLING_THREADS = 1
# Their L: waits in turn add up, so it is short beside the claim's (BLOCK_S), yet a hundred times a
# thread's wake-up (tens of µs), so that wall / L still counts waits.
OPPOSITE_BLOCK_S = 0.005
WAITS = {"blocked": "block", "in_turn": "in_turn", "polling": "poll"}  # the claim's world, then the opposites


def block_s(n: int) -> float:
    return max(BLOCK_S, n * BLOCK_S_PER_THREAD)


def _usleep_holding_the_gil(seconds: float) -> None:
    usleep = ctypes.PyDLL(None).usleep  # PyDLL: the GIL stays held for the whole call
    usleep.argtypes = [ctypes.c_uint]
    usleep(int(seconds * 1e6))


def cpu_clocks(threads) -> list[int] | None:
    """Each thread's CPU clock (pthread_getcpuclockid), or None where the platform has none."""
    if not hasattr(time, "pthread_getcpuclockid"):
        return None
    return [time.pthread_getcpuclockid(t.ident) for t in threads]


def waiting_cpu_seconds(clocks: list[int] | None, finals: list[float | None]) -> float:
    """The CPU seconds the waiting threads have used, read from their own clocks: exact to the nanosecond even
    for a thread running on another CPU right now. The process clock (time.process_time) is not: it adds up
    each thread's runtime as the scheduler last recorded it, so a thread that never switches (a poller on a
    free-threaded build) is counted only at scheduler ticks, and over a window of a few milliseconds such a
    thread read anywhere from a small part of a core to a whole one. A thread that has already ended (the main
    thread overslept the window's end on a busy machine) counts with its clock's last reading, which it leaves
    in `finals`.
    Without per-thread clocks, the process clock."""
    if clocks is None:
        return time.process_time()
    total = 0.0
    for clock, final in zip(clocks, finals):
        try:
            total += time.clock_gettime(clock)
        except OSError:  # EINVAL: the thread is gone, and read its clock itself on the way out
            if final is None:
                raise
            total += final
    return total


class BlockedThreads:
    """N parked threads; once released, each waits for L (block_s(N) unless given) in `blocker`.

    `wait` is how: "block" (the claim's world: all block at once), "in_turn" (each blocks while
    holding one shared lock, so the waits queue up) or "poll" (each spins, or busy-polls its socket,
    until L has passed: a wait that keeps the CPU).
    """

    def __init__(self, n: int, blocker: str, wait: str = "block", block_for: float | None = None):
        if wait not in WAITS.values():
            raise ValueError(f"unknown wait {wait!r}; use one of {', '.join(WAITS.values())}")
        self.n, self.blocker, self.wait = n, blocker, wait
        self.block_s = block_s(n) if block_for is None else block_for
        self.all_blocking = threading.Event()
        self._entered = 0
        self._lock = threading.Lock()
        self._turn = threading.Lock()  # held around each blocking call in the "in_turn" world
        self._requests: queue.SimpleQueue = queue.SimpleQueue()  # in turn: which thread's peer writes next
        self._peer: threading.Thread | None = None
        self.peer_error: OSError | None = None
        self.blocked_s = [0.0] * n
        self.final_cpu: list[float | None] = [None] * n
        self.pairs = []
        try:  # built one by one, so a failure part-way (EMFILE) can be undone
            for _ in range(n if blocker == "socket_recv" else 0):
                self.pairs.append(socket.socketpair())
            if wait == "in_turn" and blocker == "socket_recv":
                self._peer = threading.Thread(target=self._write_in_turn, name="th5-peer")
                self._peer.start()
            self.parked = ParkedThreads(self._run, [(i,) for i in range(n)], name="th5")
        except BaseException:
            self._stop_peer()
            self._close_pairs()
            raise

    def _run(self, i: int) -> None:
        with self._lock:
            self._entered += 1
            if self._entered == self.n:
                self.all_blocking.set()
        t0 = time.perf_counter()
        if self.wait == "in_turn":
            with self._turn:
                self._block(i)
        elif self.wait == "poll":
            self._poll(i, t0 + self.block_s)
        else:
            self._block(i)
        self.blocked_s[i] = time.perf_counter() - t0
        self.final_cpu[i] = time.thread_time()  # its clock's last reading, should the window outlast it

    def _block(self, i: int) -> None:
        if self.blocker == "sleep":
            time.sleep(self.block_s)
            return
        if self.wait == "in_turn":
            self._requests.put(i)  # the peer writes L from now
        if self.pairs[i][0].recv(1) != b"x":
            raise RuntimeError("socketpair delivered the wrong byte")

    def _poll(self, i: int, deadline: float) -> None:
        """A wait that keeps the CPU: spin until the deadline, or busy-poll the socket until its byte is there."""
        if self.blocker == "sleep":
            while time.perf_counter() < deadline:
                os.sched_yield()  # returns at once while no other thread wants this CPU; releases the GIL
            return
        sock = self.pairs[i][0]
        while True:
            try:
                got = sock.recv(1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            if got != b"x":
                raise RuntimeError("socketpair delivered the wrong byte")
            return

    def _write_in_turn(self) -> None:
        """In turn, on sockets: L after each thread began its recv, write its byte (None ends this)."""
        try:
            while (i := self._requests.get()) is not None:
                time.sleep(self.block_s)
                self.pairs[i][1].send(b"x")
        except OSError as exc:  # unblock every waiter, so that the round fails instead of hanging
            self.peer_error = exc
            for _, peer in self.pairs:
                try:
                    peer.send(b"x")
                except OSError:
                    pass

    def _stop_peer(self) -> None:
        if self._peer is not None:
            self._requests.put(None)
            self._peer.join(timeout=10)

    def release_and_join(self) -> tuple[float, float]:
        """Release, block, join; returns (CPU s, wall s) of the window in which all N were blocked.

        The window opens once the last thread is about to block and closes at 0.9 L after
        the release, before the first sleeper can wake or any peer writes. The CPU is the waiting
        threads' own (waiting_cpu_seconds), not the process clock's.
        """
        clocks = cpu_clocks(self.parked.threads)
        released = time.perf_counter()
        self.parked.release()
        self.all_blocking.wait()
        cpu0, wall0 = waiting_cpu_seconds(clocks, self.final_cpu), time.perf_counter()
        time.sleep(max(0.0, released + 0.9 * self.block_s - wall0))
        cpu1, wall1 = waiting_cpu_seconds(clocks, self.final_cpu), time.perf_counter()
        if self.blocker == "socket_recv":
            time.sleep(max(0.0, released + self.block_s - wall1))  # the peers write only after L
            for _, peer in self.pairs:
                peer.send(b"x")
        self.parked.join()
        if self.parked.errors:
            raise self.parked.errors[0]
        return cpu1 - cpu0, wall1 - wall0

    def take_turns(self) -> float:
        """The "in_turn" world: release and join; returns the wall seconds (the peer writes, not the caller)."""
        t0 = time.perf_counter()
        self.parked.go()
        wall = time.perf_counter() - t0
        if self.peer_error is not None:
            raise self.peer_error
        return wall

    def _close_pairs(self) -> None:
        for a, b in self.pairs:
            a.close()
            b.close()

    def close(self) -> None:
        self.parked.release()
        for _, peer in self.pairs:
            try:
                peer.send(b"x")  # unblock any thread still waiting (a failed round)
            except OSError:
                pass
        self.parked.close()
        self._stop_peer()  # after the threads: none of them waits for it any more
        self._close_pairs()


@pytest.fixture(scope="module")
def in_turn_control() -> float | None:
    """wall / L of CONTROL_THREADS threads blocked in a GIL-holding call; None without a GIL."""
    if not environment.gil_enabled():
        return None
    parked = ParkedThreads(_usleep_holding_the_gil, [(CONTROL_BLOCK_S,)] * CONTROL_THREADS, name="th5-control")
    t0 = time.perf_counter()
    parked.go()
    return (time.perf_counter() - t0) / CONTROL_BLOCK_S


def one_world(wait: str, threads: int, blocker: str) -> dict:
    """One round of one world: threads are made (untimed), released, joined, and closed even on failure."""
    if wait == "block":
        world = BlockedThreads(threads, blocker)
    else:
        n = OPPOSITE_THREADS if wait == "in_turn" else POLLING_THREADS
        world = BlockedThreads(n, blocker, wait=wait, block_for=OPPOSITE_BLOCK_S)
    try:
        if wait == "in_turn":
            return {"wall_over_L": world.take_turns() / world.block_s}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        window_cpu, window_wall = world.release_and_join()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return {"wall": wall, "wall_over_L": wall / world.block_s, "whole_cores": cpu / wall,
                "blocked_cores": window_cpu / window_wall if window_wall > 0 else float("inf"),
                "window": window_wall, "overlap": sum(world.blocked_s) / wall}
    finally:
        world.close()


def block_rounds(threads: int, blocker: str) -> list[dict]:
    """Rounds of the claim's world and both opposite worlds, in alternating order, until every check is decided."""
    def one_round():
        order = list(WAITS) if len(made) % 2 == 0 else list(reversed(WAITS))
        made.append(None)
        return {name: one_world(WAITS[name], threads, blocker) for name in order}

    def done(rounds):
        col = {(w, k): [r[w][k] for r in rounds] for w, k in
               (("blocked", "wall_over_L"), ("in_turn", "wall_over_L"), ("blocked", "blocked_cores"),
                ("polling", "blocked_cores"))}
        return all(stats.decided(v, "<=", MAX_WALL_OVER_L if k == "wall_over_L" else MAX_CORES_WHILE_BLOCKED)
                   for (_, k), v in col.items())

    made: list = []
    return sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done)


@pytest.mark.claim("TH5")
@pytest.mark.parametrize("blocker", ("sleep", "socket_recv"))
@pytest.mark.parametrize("threads", THREADS)
def test_threads_blocked_on_io_wait_together_not_in_turn(benchmark, evidence, threads, blocker, in_turn_control):
    benchmark.group = "TH5 N threads each blocked for L"
    rounds = block_rounds(threads, blocker)
    out = {k: [r["blocked"][k] for r in rounds] for k in rounds[0]["blocked"]}
    replay(benchmark, out["wall"])

    L = block_s(threads)
    evidence.condition(n=threads, blocker=blocker, block_s=L, opposite_block_s=OPPOSITE_BLOCK_S)
    evidence.figure("blocked_window", unit="s", samples=out["window"])
    evidence.figure("cores_whole_block", unit="cores", samples=out["whole_cores"])
    evidence.figure("overlap", unit="threads", samples=out["overlap"])
    evidence.figure("in_turn_wall_over_L", threads, unit="x (if the waits took turns)")
    evidence.note("cores_whole_block includes waking N threads, which take the GIL one after another; "
                  "cores_while_blocked covers only the window in which all N were blocked")
    if in_turn_control is None:
        evidence.note("no GIL: a blocking call that keeps others from running cannot be made, so no control")
    else:
        evidence.control("control_gil_held_wall_over_L", op=">=", threshold=MAX_WALL_OVER_L,
                         unit=f"x ({CONTROL_THREADS} threads)", value=in_turn_control,
                         why=f"{CONTROL_THREADS} threads blocked while holding the GIL did not take turns, "
                         "so waits in turn would not have shown")
    how = "sleep" if blocker == "sleep" else "recv on a socketpair"
    evidence.support("wall_over_L", op="<=", threshold=MAX_WALL_OVER_L, unit="x", samples=out["wall_over_L"],
                     why=f"{threads} waits of L overlap; taking turns would give {threads}x",
                     opposite=Opposite(f"{OPPOSITE_THREADS} threads each blocked in {how} for "
                                       f"{OPPOSITE_BLOCK_S * 1000:g} ms while holding one shared lock (waits in "
                                       "turn), interleaved rounds",
                                       samples=[r["in_turn"]["wall_over_L"] for r in rounds]))
    poller = ("a thread spinning on os.sched_yield() until L has passed" if blocker == "sleep"
              else "a thread busy-polling its socketpair with recv(MSG_DONTWAIT)")
    evidence.support("cores_while_blocked", op="<=", threshold=MAX_CORES_WHILE_BLOCKED, unit="cores",
                     samples=out["blocked_cores"], why="a thread blocked in the kernel uses no CPU",
                     opposite=Opposite(f"{poller} ({OPPOSITE_BLOCK_S * 1000:g} ms), the same window, "
                                       "interleaved rounds", samples=[r["polling"]["blocked_cores"] for r in rounds]))
    evidence.settle(benchmark)
