"""IO6: a non-blocking call returns at once when no data is ready; polling in a loop wastes CPU.

Expected holds.

- Returns at once: a non-blocking recv on an empty AF_UNIX socket, timed call by call, each
  paired with the same recv timed just before it when a byte *is* waiting (that recv takes the
  byte, so the next call finds none). The claim predicts the refusing call costs what the
  receiving one does (ratio ≈ 1: one syscall, nothing waits); a call that waited for data
  would cost at least the shortest wait a kernel can make (a timer tick, a millisecond or
  more: ratio in the hundreds). Decided by the interval of the per-pair ratios' median. The
  fraction of calls that raised BlockingIOError is a figure: no data was ever sent, so it
  follows from the construction. A blocking recv with a short timeout is timed as a figure.
- Polling wastes CPU: waiting DATA_DELAY_S for a byte a timer thread sends. Busy-polling (a
  non-blocking recv in a loop), a blocking recv, and a pure-Python spin of the same length
  run in every round. /proc/thread-self/schedstat gives a thread's time on a CPU plus its
  time waiting in a run queue for one: over wall, the cores it *demands*. The claim predicts
  the poller demands a whole core (it never sleeps) and the blocking wait ≈ 0; a poll that
  cost nothing would demand ≈ 0. Without schedstat, the poller's CPU over the spin's CPU in
  the same round decides instead. Both decided by intervals of per-round figures, and each
  wait is the other's opposite world: the blocking wait's demand must fail the poller's
  threshold, and the poller's cores the blocking wait's.

Traps: on a shared machine a spinning thread's CPU can fall far below one core while it waits
for a CPU, so the verdict uses demand, which stays at 1 under any load; CPU obtained is
recorded beside it. Single calls take about a microsecond, so the ratio is taken over
thousands of pairs.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from harness import stats
from harness.evidence import Opposite
from harness.measure import Meter
from harness.probes import has_schedstat, schedstat
from harness.scale import pick
from harness.stats import sample_rounds
from harness.timing import replay

NONBLOCKING_ROUNDS = pick(quick=2000, full=20000)
WAIT_TIMEOUT_S = 0.005  # a short blocking wait, recorded beside the non-blocking call (a figure)
WAIT_TIMEOUT_SAMPLES = pick(quick=5, full=20)
# Refusing at once costs one syscall, as a recv that finds a byte does (≈ 1); a call that waited
# would cost at least a timer tick, hundreds of times a microsecond-scale call.
MAX_NODATA_TO_READY_RATIO = 10.0
DATA_DELAY_S = pick(quick=0.05, full=0.2)
MAX_ROUNDS = pick(quick=12, full=20)  # rounds are added while an interval straddles its threshold
# The poller never sleeps: it demands a whole core (1); a poll that cost nothing would demand ≈ 0.
MIN_BUSY_DEMAND = 0.5
# Without schedstat: a poller gets what a pure spin gets in the same round (≈ 1); a cheap poll ≈ 0.
MIN_BUSY_SHARE = 0.5
# A thread blocked in recv sleeps (≈ 0 cores); one that waited on the CPU would use a whole core.
MAX_BLOCKING_CORES = 0.25
BLOCKING_WORLD = "the same wait as one blocking recv"  # the poller's opposite world, and vice versa


def nonblocking_pairs(writer, reader) -> tuple[list[float], list[float], int]:
    """(seconds of a recv finding a byte, seconds of the next recv finding none, calls that returned)."""
    ready, nodata, returned = [], [], 0
    reader.setblocking(False)
    for _ in range(NONBLOCKING_ROUNDS):
        writer.send(b"x")
        t0 = time.perf_counter()
        reader.recv(1)
        t1 = time.perf_counter()
        try:
            reader.recv(1)
            returned += 1
        except BlockingIOError:
            pass
        t2 = time.perf_counter()
        ready.append(t1 - t0)
        nodata.append(t2 - t1)
    return ready, nodata, returned


def timed_out_waits() -> list[float]:
    waiter_a, waiter_b = socket.socketpair()
    with waiter_a, waiter_b:
        waiter_b.settimeout(WAIT_TIMEOUT_S)
        waits = []
        for _ in range(WAIT_TIMEOUT_SAMPLES):
            t0 = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                waiter_b.recv(1)
            waits.append(time.perf_counter() - t0)
    return waits


@pytest.mark.claim("IO6")
def test_nonblocking_recv_without_data_raises_blocking_io_error_at_once(benchmark, evidence, socket_pair):
    waits = timed_out_waits()
    ready, nodata, returned = nonblocking_pairs(*socket_pair)
    benchmark.group = "IO6 non-blocking recv with no data"
    replay(benchmark, nodata)

    call_s = evidence.figure("nonblocking_call", unit="s (per call, perf_counter around one recv)", samples=nodata)
    evidence.figure("recv_with_data_ready", unit="s (per call)", samples=ready)
    wait_s = evidence.figure("blocking_wait_timeout", unit="s", samples=waits)
    evidence.figure("call_to_wait_ratio", call_s / wait_s, "x")  # a figure: wait_s is the configured timeout
    evidence.figure("raised_blocking_io_error_fraction", 1 - returned / NONBLOCKING_ROUNDS)
    if returned:
        pytest.fail(f"{returned} non-blocking recv calls found data that was never sent")
    evidence.support(
        "nodata_to_ready_call_ratio", op="<=", threshold=MAX_NODATA_TO_READY_RATIO, unit="x",
        samples=[n / r for n, r in zip(nodata, ready)],
        why="refusing takes no longer than a recv that finds a byte waiting: nothing waited",
    )
    evidence.settle(benchmark)


# --- waiting for data: busy-poll against a blocking wait ----------------------------------------
def wait_busy(sock) -> int:
    """Poll a non-blocking socket until data arrives; returns the number of empty polls."""
    polls = 0
    while True:
        try:
            if sock.recv(64):
                return polls
        except BlockingIOError:
            polls += 1


def wait_blocking(sock) -> int:
    sock.recv(64)
    return 0


def spin(_sock) -> int:
    end = time.perf_counter() + DATA_DELAY_S
    while time.perf_counter() < end:
        pass
    return 0


def timed_wait(wait, pair) -> dict:
    """Wait for one message that the pair's sender delivers after DATA_DELAY_S (or spin as long)."""
    sender, sock = pair if pair else (None, None)
    timer = threading.Timer(DATA_DELAY_S, sender.send, (b"x",)) if sender else None
    sched = has_schedstat()
    r0 = sum(schedstat()[:2]) if sched else 0.0
    c0, w0 = time.thread_time(), time.perf_counter()
    if timer:
        timer.start()
    try:
        polls = wait(sock)
    finally:
        if timer:
            timer.join()
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    return {"wall": wall, "cores": cpu / wall, "demand": (sum(schedstat()[:2]) - r0) / wall if sched else None,
            "polls": polls}


WAITS = {"blocking": wait_blocking, "spin": spin, "busy_poll": wait_busy}


def waiting_rounds() -> list[dict]:
    with contextlib.ExitStack() as stack:
        pairs = {"blocking": socket.socketpair(), "busy_poll": socket.socketpair(), "spin": None}
        for pair in filter(None, pairs.values()):
            stack.enter_context(pair[0])
            stack.enter_context(pair[1])
        pairs["busy_poll"][1].setblocking(False)

        def done(rounds):  # each wait's figure, and the same figure of the other wait (its opposite world)
            busy = MIN_BUSY_DEMAND if rounds[0]["busy_poll"]["demand"] is not None else MIN_BUSY_SHARE
            return all(stats.decided(demand(rounds, name), ">=", busy) and
                       stats.decided([r[name]["cores"] for r in rounds], "<=", MAX_BLOCKING_CORES)
                       for name in ("busy_poll", "blocking"))

        # the spin control runs right before the busy-poll, so each pair sees the same load
        return sample_rounds(lambda: {name: timed_wait(wait, pairs[name]) for name, wait in WAITS.items()},
                             max_rounds=MAX_ROUNDS, done=done)


def demand(rounds, name: str) -> list[float]:
    """Per round, the cores `name`'s wait demanded (schedstat: run + queue time), or without
    schedstat its CPU share relative to a pure spin in the same round."""
    return [r[name]["demand"] if r[name]["demand"] is not None else r[name]["cores"] / r["spin"]["cores"]
            for r in rounds]


@pytest.mark.claim("IO6")
def test_busy_poll_burns_a_core_while_a_blocking_wait_burns_none(benchmark, evidence):
    with Meter() as process:
        rounds = waiting_rounds()
    benchmark.group = "IO6 waiting for data: busy-poll"
    replay(benchmark, [r["busy_poll"]["wall"] for r in rounds])

    evidence.condition(data_delay_s=DATA_DELAY_S)
    for name in ("spin",):  # the two waits' cores are the checks below (each the other's opposite)
        evidence.figure(f"{name}_cores", unit="cores", samples=[r[name]["cores"] for r in rounds])
    evidence.figure("empty_polls_per_wait", unit="calls", samples=[r["busy_poll"]["polls"] for r in rounds])
    evidence.figure("process_cores_whole_run", process.usage.cores, unit="cores")
    if rounds[0]["busy_poll"]["demand"] is not None:
        for name in ("spin", "blocking"):
            evidence.figure(f"{name}_core_demand", unit="cores", samples=[r[name]["demand"] for r in rounds])
        evidence.support("busy_poll_core_demand", op=">=", threshold=MIN_BUSY_DEMAND, unit="cores",
                         samples=demand(rounds, "busy_poll"),
                         why="the polling thread never sleeps: it holds or queues for a core all the time",
                         opposite=Opposite(BLOCKING_WORLD, samples=demand(rounds, "blocking")))
    else:
        evidence.support("busy_poll_share_of_spin", op=">=", threshold=MIN_BUSY_SHARE, unit="x",
                         samples=demand(rounds, "busy_poll"),
                         why="no schedstat here: the poller gets the CPU a pure spin gets in the same round",
                         opposite=Opposite(BLOCKING_WORLD, samples=demand(rounds, "blocking")))
    evidence.support("blocking_wait_cores", op="<=", threshold=MAX_BLOCKING_CORES, unit="cores",
                     samples=[r["blocking"]["cores"] for r in rounds],
                     why="a thread blocked in recv sleeps in the kernel until the data arrives",
                     opposite=Opposite("the same wait as a busy-polling loop of non-blocking recv",
                                       samples=[r["busy_poll"]["cores"] for r in rounds]))
    evidence.settle(benchmark)
