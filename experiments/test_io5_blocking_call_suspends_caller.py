"""IO5: a blocking call suspends its caller until the data is ready; the caller then copies it.

Expected holds. The "device" is harness.devices.SlowDevice on a socketpair: a child process
that sleeps, then writes (this VM has no real slow device).

(a) Suspended until ready: the caller asks the device for data L later and calls recv
    (MSG_WAITALL). Per round, wall / L and the caller's thread CPU / wall. The claim predicts
    wall ≥ L (the call returns only once the data is there) with ≈ 0 cores used meanwhile;
    a call that did not suspend would return before L or spend the wait on the CPU.
    The opposite world, in the same rounds (alternating which goes first): the caller asks the
    device for data L' later and calls recv with MSG_DONTWAIT, a call that does not suspend;
    that first call's wall / L' is wall_over_delay's opposite (it returns at once: ≈ 0), and
    the caller then busy-polls with such calls until the data is there, whose CPU / wall is
    caller_cores' opposite (≈ 1 core). Both of its figures are predicted independent of the
    delay, as the claim's are, so it runs at the shortest L of the module only
    (OPPOSITE_DELAY_S), to cost little.
(b) Ready data waits in the kernel until the caller copies it: the device writes the payload
    and reports that its last write returned; FIONREAD is then read once. The claim predicts
    the whole payload queued in the kernel (no one has copied it to the caller); were data
    delivered into the caller's buffer without its call, nothing would be queued. The recv
    that follows is then the caller's own CPU work: ≈ 1 core, against ≈ 0 for a caller that
    only waited while something else copied.
Every per-round figure is decided by the interval of its median (harness.stats); each check of
(a) decides only when its opposite world's interval lands on the other side of its threshold.

Traps: a woken thread may wait for a CPU, so wall over L has no upper check (its largest
value is a figure); the user buffer is zeroed before each round and nothing reads into it
before the recv, so "untouched before the recv" holds by construction and is not a check.
"""
from __future__ import annotations

import socket
import time

import pytest

from harness import stats
from harness.devices import SlowDevice, pattern
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux
from harness.stats import sample_rounds
from harness.timing import replay

pytestmark = needs_linux  # FIONREAD, pass_fds of a socket to a child

PAYLOAD_BYTES = 64 << 10  # what the device delivers after L (fits any socket buffer)
READY_BYTES = 1 << 20  # (b): a larger payload, so the caller's copy is long enough to time
RECV_DELAYS_S = pick(quick=(0.02, 0.1), full=(0.02, 0.1, 0.5))  # (a): L
MAX_ROUNDS = pick(quick=10, full=20)  # rounds are added while an interval straddles its threshold
# (a)'s opposite world (a non-blocking call, then busy polling) predicts ≈ 0 x L and ≈ 1 core at any
# delay, so it waits only the shortest delay of the module.
OPPOSITE_DELAY_S = min(RECV_DELAYS_S)
POLL_TIMEOUT_S = 10  # a device that never delivers fails the round instead of spinning on
# Suspended until the data is there: wall >= L (ratio >= 1); a call that returned without waiting
# for the device would read far below 1. 0.95 leaves room for the timers' granularity only.
MIN_WAIT_OVER_DELAY = 0.95
# A suspended caller uses ≈ 0 cores; one that waits on the CPU uses a whole core.
MAX_WAITING_CORES = 0.25
# All of a ready payload queued in the kernel reads 1; data already handed to the caller reads 0.
MIN_QUEUED_FRACTION = 0.5
# The caller copying the bytes keeps it on the CPU (≈ 1 core); a caller that only waited while
# something else copied would use ≈ 0.
MIN_READY_RECV_CORES = 0.5


def blocking_recv_rounds(delay_s: float) -> list[dict]:
    """Rounds of the blocking recv and of its opposite world, alternating which goes first, until decided."""
    buf = bytearray(PAYLOAD_BYTES)
    expected = pattern(PAYLOAD_BYTES)

    def blocking():
        buf[:] = bytes(PAYLOAD_BYTES)
        c0, w0 = time.thread_time(), time.perf_counter()
        device.request(delay_s, PAYLOAD_BYTES)
        device.read_into(buf, PAYLOAD_BYTES)
        w1, c1 = time.perf_counter(), time.thread_time()
        return {"wall": w1 - w0, "cpu": c1 - c0, "intact": buf == expected and device.queued() == 0}

    def polling():
        """The opposite world: a recv that does not suspend (MSG_DONTWAIT), then polling with it until the data."""
        buf[:] = bytes(PAYLOAD_BYTES)
        view, got, polls = memoryview(buf), 0, 0
        c0, w0 = time.thread_time(), time.perf_counter()
        device.request(OPPOSITE_DELAY_S, PAYLOAD_BYTES)
        while got < PAYLOAD_BYTES:
            try:
                n = device.sock.recv_into(view[got:], PAYLOAD_BYTES - got, socket.MSG_DONTWAIT)
            except BlockingIOError:
                n = None
                if time.perf_counter() - w0 > POLL_TIMEOUT_S:
                    raise TimeoutError(f"the device sent {got} of {PAYLOAD_BYTES} B in {POLL_TIMEOUT_S} s") from None
            if polls == 0:
                w_first = time.perf_counter()  # the first call has returned, with or without data
                first_found_data = n is not None
            polls += 1
            if n == 0:
                raise EOFError(f"the device delivered {got} of {PAYLOAD_BYTES} bytes")
            got += n or 0
        w1, c1 = time.perf_counter(), time.thread_time()
        return {"first_call_wall": w_first - w0, "first_found_data": first_found_data, "wall": w1 - w0,
                "cpu": c1 - c0, "polls": polls, "intact": buf == expected and device.queued() == 0}

    def one_round():
        worlds = {"blocking": blocking, "polling": polling}
        order = list(worlds) if len(made) % 2 == 0 else list(reversed(worlds))
        made.append(None)
        return {world: worlds[world]() for world in order}

    def done(rounds):
        blocked, polled = ([r[w] for r in rounds] for w in ("blocking", "polling"))
        return stats.decided([r["wall"] / delay_s for r in blocked], ">=", MIN_WAIT_OVER_DELAY) and \
            stats.decided([r["cpu"] / r["wall"] for r in blocked], "<=", MAX_WAITING_CORES) and \
            stats.decided([r["first_call_wall"] / OPPOSITE_DELAY_S for r in polled], ">=", MIN_WAIT_OVER_DELAY) and \
            stats.decided([r["cpu"] / r["wall"] for r in polled], "<=", MAX_WAITING_CORES)

    made: list = []
    with SlowDevice("socket") as device:
        return sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done)


@pytest.mark.claim("IO5")
@pytest.mark.parametrize("delay_s", RECV_DELAYS_S, ids=lambda d: f"{d * 1000:g}ms")
def test_blocking_recv_suspends_caller_until_data_arrives(benchmark, evidence, delay_s):
    both = blocking_recv_rounds(delay_s)
    rounds, polled = [r["blocking"] for r in both], [r["polling"] for r in both]
    benchmark.group = "IO5 blocking recv with the data L later"
    replay(benchmark, [r["wall"] for r in rounds])

    evidence.condition(channel="socket", delay_s=delay_s, payload_bytes=PAYLOAD_BYTES)
    evidence.figure("delay_s", delay_s, "s")  # L, for the caveat
    evidence.figure("wall", unit="s", samples=[r["wall"] for r in rounds])
    evidence.figure("caller_cpu", unit="s", samples=[r["cpu"] for r in rounds])
    evidence.figure("wall_over_delay_max", max(r["wall"] for r in rounds) / delay_s, "x")
    evidence.figure("rounds_with_bytes_in_user_buffer", sum(r["intact"] for r in rounds), "rounds")
    evidence.figure("opposite_delay_s", OPPOSITE_DELAY_S, "s")
    evidence.figure("opposite_polls_per_wait", unit="calls", samples=[r["polls"] for r in polled])
    evidence.figure("opposite_first_calls_that_found_data", sum(r["first_found_data"] for r in polled), "rounds")
    if not all(r["intact"] for r in rounds + polled):
        pytest.fail("recv returned without the payload in the buffer: the device or the harness is broken")
    evidence.support(
        "wall_over_delay", op=">=", threshold=MIN_WAIT_OVER_DELAY, unit="x",
        samples=[r["wall"] / delay_s for r in rounds], why="the call returned only once the data was there",
        opposite=Opposite(f"a recv with MSG_DONTWAIT, data asked for {OPPOSITE_DELAY_S * 1000:g} ms later "
                          "(the call's wall over that delay), interleaved rounds",
                          samples=[r["first_call_wall"] / OPPOSITE_DELAY_S for r in polled]),
    )
    evidence.support(
        "caller_cores", op="<=", threshold=MAX_WAITING_CORES, unit="cores",
        samples=[r["cpu"] / r["wall"] for r in rounds], why="the suspended caller used no CPU",
        opposite=Opposite(f"a caller busy-polling recv with MSG_DONTWAIT for data {OPPOSITE_DELAY_S * 1000:g} ms "
                          "later, interleaved rounds", samples=[r["cpu"] / r["wall"] for r in polled]),
    )
    evidence.settle(benchmark)


def ready_data_rounds() -> list[dict]:
    buf = bytearray(READY_BYTES)
    expected = pattern(READY_BYTES)

    def one_round():
        buf[:] = bytes(READY_BYTES)
        device.request(0, READY_BYTES, ack=True)  # returns once the device's last write has returned
        queued = device.queued()  # read once, no polling
        c0, w0 = time.thread_time(), time.perf_counter()
        device.read_into(buf, READY_BYTES)
        c1, w1 = time.thread_time(), time.perf_counter()
        return {"queued": queued, "cpu": c1 - c0, "wall": w1 - w0, "intact": buf == expected}

    def done(rounds):
        return stats.decided([r["cpu"] / r["wall"] for r in rounds], ">=", MIN_READY_RECV_CORES)

    with SlowDevice("socket") as device:
        return sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done)


@pytest.mark.claim("IO5")
def test_ready_data_waits_in_kernel_until_caller_copies_it(benchmark, evidence):
    rounds = ready_data_rounds()
    benchmark.group = "IO5 recv of data already in the kernel buffer"
    replay(benchmark, [r["wall"] for r in rounds])

    evidence.condition(channel="socket", ready_bytes=READY_BYTES)
    evidence.figure("queued_before_recv", unit="B", samples=[r["queued"] for r in rounds])
    evidence.figure("copy_cpu_per_gb", unit="s/GB", samples=[r["cpu"] / (READY_BYTES / 1e9) for r in rounds])
    evidence.figure("rounds_with_bytes_copied", sum(r["intact"] for r in rounds), "rounds")
    if not all(r["intact"] for r in rounds):
        pytest.fail("recv returned without the payload in the buffer: the device or the harness is broken")
    evidence.support(
        "queued_fraction_before_recv", op=">=", threshold=MIN_QUEUED_FRACTION, unit="",
        samples=[r["queued"] / READY_BYTES for r in rounds],
        why="ready data waits whole in the kernel buffer (FIONREAD, read once) until someone calls recv",
    )
    evidence.support(
        "recv_cores", op=">=", threshold=MIN_READY_RECV_CORES, unit="cores",
        samples=[r["cpu"] / r["wall"] for r in rounds],
        why="the caller's recv then copies the bytes: its time is the caller's own CPU",
    )
    evidence.note("the user buffer is zeroed before each round and nothing reads into it before the recv: "
                  "untouched before the recv by construction, so not a check")
    evidence.settle(benchmark)
