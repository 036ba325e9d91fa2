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
overlap and the block takes about L. Process CPU time (time.process_time, all threads)
tells "blocked and idle" apart from "busy waiting". The control, once per module: a few
threads that block for L inside a call that keeps the GIL (libc usleep through
ctypes.PyDLL, as a C extension that forgets to release it would) do take turns, so wall / L
reads the opposite outcome when blocking does stop the others.

How it is decided, per round and by the interval of the median: wall / L below a threshold
between 1 (overlap) and N (in turn), and CPU seconds / wall seconds near zero cores over the
window in which all N threads are blocked. Each thread records how long it was blocked, so
the overlap (sum of blocked thread-time / wall) is shown next to N.

Known traps: waking N threads costs a little each (they retake the GIL one by one), so
wall / L grows a little with N and the whole block is not CPU-free; that cost is shown as
cores_whole_block, while the check covers only the all-blocked window. Thread creation is
outside the timer (setup). One CPU is enough: blocked threads need no core.
"""
from __future__ import annotations

import ctypes
import socket
import threading
import time

import pytest

from harness import environment
from harness.parked import ParkedThreads
from harness.scale import pick
from harness.thresholds import IDLE_CORES, about

THREADS = pick(quick=(10, 100), full=(10, 100, 1000))
BLOCK_S = 0.03  # L: how long each thread stays blocked, at least
BLOCK_S_PER_THREAD = 0.0003  # L grows with N beyond 100, so waking N threads stays short beside L
ROUNDS = pick(quick=6, full=10)
# wall / L. Overlapping waits predict about 1 (plus waking the threads); waits in turn predict N,
# at least 10 here. Rule: harness.thresholds.about(1), whose upper end is 2.
MAX_WALL_OVER_L = about(1.0)[1]
# CPU cores busy while all N threads are blocked. Blocked in the kernel predicts ≈ 0; a wait that
# keeps a thread running (busy waiting, the GIL held) predicts 1 or more. Rule: IDLE_CORES.
MAX_CORES_WHILE_BLOCKED = IDLE_CORES
CONTROL_THREADS = 6  # in turn, they predict wall / L = 6: three times MAX_WALL_OVER_L
CONTROL_BLOCK_S = 0.01  # the control's L: its waits add up, so it is kept short


def block_s(n: int) -> float:
    return max(BLOCK_S, n * BLOCK_S_PER_THREAD)


def _usleep_holding_the_gil(seconds: float) -> None:
    usleep = ctypes.PyDLL(None).usleep  # PyDLL: the GIL stays held for the whole call
    usleep.argtypes = [ctypes.c_uint]
    usleep(int(seconds * 1e6))


class BlockedThreads:
    """N parked threads; once released, each blocks for block_s(N) in `blocker`."""

    def __init__(self, n: int, blocker: str):
        self.n, self.blocker, self.block_s = n, blocker, block_s(n)
        self.all_blocking = threading.Event()
        self._entered = 0
        self._lock = threading.Lock()
        self.blocked_s = [0.0] * n
        self.pairs = []
        try:  # built one by one, so a failure part-way (EMFILE) can be undone
            for _ in range(n if blocker == "socket_recv" else 0):
                self.pairs.append(socket.socketpair())
            self.parked = ParkedThreads(self._run, [(i,) for i in range(n)], name="th5")
        except BaseException:
            self._close_pairs()
            raise

    def _run(self, i: int) -> None:
        with self._lock:
            self._entered += 1
            if self._entered == self.n:
                self.all_blocking.set()
        t0 = time.perf_counter()
        if self.blocker == "sleep":
            time.sleep(self.block_s)
        elif self.pairs[i][0].recv(1) != b"x":
            raise RuntimeError("socketpair delivered the wrong byte")
        self.blocked_s[i] = time.perf_counter() - t0

    def release_and_join(self) -> tuple[float, float]:
        """Release, block, join; returns (CPU s, wall s) of the window in which all N were blocked.

        The window opens once the last thread is about to block and closes at 0.9 L after
        the release, before the first sleeper can wake or any peer writes. process_time has
        nanosecond resolution (os.times counts 10 ms ticks, too coarse for this window).
        """
        released = time.perf_counter()
        self.parked.release()
        self.all_blocking.wait()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(max(0.0, released + 0.9 * self.block_s - wall0))
        cpu1, wall1 = time.process_time(), time.perf_counter()
        if self.blocker == "socket_recv":
            time.sleep(max(0.0, released + self.block_s - wall1))  # the peers write only after L
            for _, peer in self.pairs:
                peer.send(b"x")
        self.parked.join()
        if self.parked.errors:
            raise self.parked.errors[0]
        return cpu1 - cpu0, wall1 - wall0

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


def block_rounds(benchmark, threads: int, blocker: str) -> dict[str, list[float]]:
    """ROUNDS rounds of `threads` threads blocked together; per-round figures."""
    current: list[BlockedThreads] = []
    out = {k: [] for k in ("wall", "whole_cores", "blocked_cores", "window", "overlap")}

    def setup():
        if current:
            current.pop().close()
        current.append(BlockedThreads(threads, blocker))

    def block_all():
        cpu0, wall0 = time.process_time(), time.perf_counter()
        window_cpu, window_wall = current[-1].release_and_join()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        out["wall"].append(wall)
        out["whole_cores"].append(cpu / wall)
        out["blocked_cores"].append(window_cpu / window_wall if window_wall > 0 else float("inf"))
        out["window"].append(window_wall)
        out["overlap"].append(sum(current[-1].blocked_s) / wall)

    try:
        benchmark.pedantic(block_all, setup=setup, rounds=ROUNDS)
    finally:
        while current:
            current.pop().close()
    return out


@pytest.mark.claim("TH5")
@pytest.mark.parametrize("blocker", ("sleep", "socket_recv"))
@pytest.mark.parametrize("threads", THREADS)
def test_threads_blocked_on_io_wait_together_not_in_turn(benchmark, evidence, threads, blocker, in_turn_control):
    benchmark.group = "TH5 N threads each blocked for L"
    out = block_rounds(benchmark, threads, blocker)

    L = block_s(threads)
    evidence.condition(n=threads, blocker=blocker, block_s=L)
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
    evidence.support("wall_over_L", op="<=", threshold=MAX_WALL_OVER_L, unit="x", samples=[w / L for w in out["wall"]],
                     why=f"{threads} waits of L overlap; taking turns would give {threads}x")
    evidence.support("cores_while_blocked", op="<=", threshold=MAX_CORES_WHILE_BLOCKED, unit="cores",
                     samples=out["blocked_cores"], why="a thread blocked in the kernel uses no CPU")
    evidence.settle(benchmark)
