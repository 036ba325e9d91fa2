"""IO4: while a device performs the I/O, the CPU is free to run other work (expected holds).

The "device" is harness.devices.SlowDevice: a child process that sleeps L, then writes into a
pipe or a socket (this VM has no real slow device). Per round: the main thread first works
alone for L; then a reader thread waits on the channel, the device is asked for data after L,
and the main thread works beside the waiting reader until it returns. The work is hashing
(hashlib releases the GIL while it hashes), so a waiting reader that wants the CPU can have it.

Two worlds, in interleaved rounds (each round runs both, in alternating order):
- the claim's world: the reader blocks in read();
- the opposite world: the reader busy-polls with non-blocking reads, a wait that burns CPU.
Measured per round and world: the reader's own CPU (time.thread_time inside it) over the wait,
and the process's CPU minus the worker's over the wait. The claim predicts ≈ 0 cores for both;
the opposite world predicts about a core. Each check decides only when the two worlds' intervals
lie on opposite sides of the threshold (harness.evidence.Opposite).

Why the worker releases the GIL: beside a pure-Python worker, a polling reader is starved of
the GIL (each non-blocking read releases it, and the worker takes it back for a whole switch
interval), so it burns almost nothing and would read as "the CPU is free" too.

Traps: the reader's CPU is counted from before the request, so over a slightly longer span
than the wait; the work ratio (work beside the reader over work alone) is a figure only.
"""
from __future__ import annotations

import hashlib
import threading
import time

import pytest

from harness import stats
from harness.devices import CHANNELS, SlowDevice
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux
from harness.stats import sample_rounds
from harness.thresholds import IDLE_CORES
from harness.timing import replay

pytestmark = needs_linux  # FIONREAD, pass_fds of a socket to a child

DEVICE_LATENCY_S = pick(quick=0.05, full=0.25)  # L, how long the "device" takes (short in quick: a wake-up is µs)
PAYLOAD_BYTES = 64 << 10  # what the device delivers after L (fits any pipe/socket buffer)
WORK_CHUNK = bytes(256 << 10)  # hashed between checks for the end of the wait (well under a millisecond)
MAX_ROUNDS = pick(quick=10, full=20)  # rounds are added while an interval straddles its threshold
WORLDS = {"blocked": "read_into", "polling": "poll_into"}  # the claim's world and the opposite world
# A blocked wait leaves the CPU idle (≈ 0 cores: only its wake-up costs); a busy-polling wait beside a
# worker that releases the GIL uses about a core. Rule: harness.thresholds.IDLE_CORES.
MAX_BLOCKED_CORES = IDLE_CORES


def work_until(stop) -> tuple[int, float]:
    """Hash chunks (GIL released while hashing) until stop() is true; return (bytes hashed, wall seconds)."""
    done, t0 = 0, time.perf_counter()
    while not stop():
        hashlib.sha256(WORK_CHUNK)
        done += len(WORK_CHUNK)
    return done, time.perf_counter() - t0


def one_round(device: SlowDevice, buf: bytearray, read: str = "read_into", alone: bool = True) -> dict:
    """Work alone for L, then work beside a thread waiting on the device for L; return the figures.

    `read` names the device's method the reader waits with: read_into blocks, poll_into (the
    opposite world) spins on non-blocking reads. `alone`: whether to time the work alone first (the
    work ratio, a figure of the claim's world only).
    """
    deadline = time.perf_counter() + DEVICE_LATENCY_S
    solo = work_until(lambda: time.perf_counter() >= deadline) if alone else None
    reader_cpu: list[float] = []

    def blocked_reader():
        # Only the read: every entry to and exit from Python costs a GIL hand-off with the worker.
        c0 = time.thread_time()
        getattr(device, read)(buf, PAYLOAD_BYTES)
        reader_cpu.append(time.thread_time() - c0)

    reader = threading.Thread(target=blocked_reader, name="blocked-reader")
    reader.start()  # it blocks in read(): nothing has been requested yet
    p0, s0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
    device.request(DEVICE_LATENCY_S, PAYLOAD_BYTES)
    during = work_until(lambda: not reader.is_alive())
    p1, s1, w1 = time.process_time(), time.thread_time(), time.perf_counter()
    reader.join()
    if not reader_cpu:
        raise RuntimeError("the blocked reader failed: see the thread's exception above")
    wait = w1 - w0
    return {"wait": wait, "reader_cores": reader_cpu[0] / wait, "others_cores": ((p1 - p0) - (s1 - s0)) / wait,
            "alone": solo, "during": during}


def interleaved_rounds(channel: str) -> list[dict]:
    """Rounds of both worlds, alternating which goes first, until every check's two intervals are decided."""
    def done(rounds):
        return all(stats.decided([r[world][key] for r in rounds], "<=", MAX_BLOCKED_CORES)
                   for key in ("reader_cores", "others_cores") for world in WORLDS)

    def both(device, buf):
        order = list(WORLDS) if len(rounds_made) % 2 == 0 else list(reversed(WORLDS))
        rounds_made.append(None)
        return {world: one_round(device, buf, WORLDS[world], alone=world == "blocked") for world in order}

    rounds_made: list = []
    buf = bytearray(PAYLOAD_BYTES)
    with SlowDevice(channel) as device:
        return sample_rounds(lambda: both(device, buf), max_rounds=MAX_ROUNDS, done=done)


@pytest.mark.claim("IO4")
@pytest.mark.parametrize("channel", CHANNELS)
def test_cpu_is_free_while_a_thread_waits_on_slow_io(benchmark, evidence, channel):
    rounds = interleaved_rounds(channel)
    blocked, polling = ([r[world] for r in rounds] for world in WORLDS)
    benchmark.group = "IO4 CPU work beside a thread blocked on slow I/O"
    replay(benchmark, [r["wait"] for r in blocked])

    evidence.condition(channel=channel, device_latency_s=DEVICE_LATENCY_S, payload_bytes=PAYLOAD_BYTES,
                       worker="hashlib (releases the GIL)")
    evidence.figure("wait_over_latency", unit="x", samples=[r["wait"] / DEVICE_LATENCY_S for r in blocked])
    for name in ("alone", "during"):
        evidence.figure(f"work_rate_{name}", unit="B/s", samples=[n / w for n, w in (r[name] for r in blocked)])
    evidence.figure("work_ratio", unit="x", samples=[
        (r["during"][0] / r["during"][1]) / (r["alone"][0] / r["alone"][1]) for r in blocked])
    poller = "a reader busy-polling with non-blocking reads, interleaved rounds"
    evidence.support(
        "blocked_thread_cores", op="<=", threshold=MAX_BLOCKED_CORES, unit="cores",
        samples=[r["reader_cores"] for r in blocked],
        opposite=Opposite(poller, samples=[r["reader_cores"] for r in polling]),
        why="a thread blocked in read() is off the CPU until the data arrives; a polling one is on it",
    )
    evidence.support(
        "process_cores_besides_worker", op="<=", threshold=MAX_BLOCKED_CORES, unit="cores",
        samples=[r["others_cores"] for r in blocked],
        opposite=Opposite(poller, samples=[r["others_cores"] for r in polling]),
        why="process CPU minus the worker's: nothing else in the process burned CPU during the wait",
    )
    evidence.note("work_ratio (work beside the blocked reader / work alone, per round) is a figure: on two cores "
                  "a polling reader would also leave the hashing worker most of its speed")
    evidence.note("no real slow device on this VM: a child process sleeps L, then writes into the pipe/socket")
    evidence.settle(benchmark)
