"""IO2: data arriving from the network or a device lands in a kernel buffer first.

Expected holds. Two measurements, on AF_UNIX and loopback TCP:

- Bytes outlive their sender in the kernel: a payload is sent, the sending socket is
  *closed*, and after a fixed settle time (no polling until the count looks right)
  FIONREAD on the receiver is read once. The claim predicts the whole payload is counted
  in the receiver's kernel queue; were data handed straight to a reader (no kernel buffer),
  nothing could be queued with no reader and no sender left: 0. The recv that follows
  must then return the payload intact.
- The buffer bounds what a sender can push (TCP only): non-blocking sends into a fresh
  connection until BlockingIOError; then every accepted byte is in the peer's receive queue
  (FIONREAD) or the sender's unsent queue (SIOCOUTQNSD), and a larger SO_RCVBUF lets the
  sender push more (same-round ratio, decided by its interval).

Traps: AF_UNIX stream sockets charge queued bytes to the sender's SO_SNDBUF, so only TCP
shows the receiver's bound. Linux doubles a requested buffer size (bookkeeping overhead),
so fills are compared with the size getsockopt reports.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time

import pytest

from harness.probes import bytes_queued, bytes_unsent
from harness.scale import pick
from harness.skips import needs_linux
from harness.sockets import TRANSPORTS, connected_pair
from harness.timing import replay

pytestmark = needs_linux  # FIONREAD/SIOCOUTQNSD

ROUNDS = pick(quick=6, full=15)
PROBE_BYTES = 64 << 10  # one message that fits any default buffer
SMALL_RCVBUF = 16 << 10  # requested sizes; Linux doubles them
LARGE_RCVBUF = 512 << 10
SENDER_SNDBUF = 16 << 10
SETTLE_S = 0.01  # fixed wait for loopback delivery before the queues are read (never a poll until equal)
# Held in the kernel, the whole payload is queued (fraction 1); without a kernel buffer, with the
# sender closed and no recv yet, nothing could be (0).
MIN_QUEUED_FRACTION = 0.5
# A buffer that bounds the sender makes a much larger SO_RCVBUF admit many times more; a sender not
# bound by the receiver's buffer would push the same amount (ratio 1).
MIN_ACCEPTED_GROWTH = 2.0
# Every accepted byte in one of the two kernel queues reads 1; bytes held anywhere else would leave a
# shortfall. The margin allows for a segment in flight at the instant of reading.
MIN_ACCOUNTED_FRACTION = 0.99


def queued_after_sender_closed(transport: str, payload: bytes) -> dict:
    """Send, close the sender, settle, read FIONREAD once, then recv; where the bytes were."""
    sender, receiver = connected_pair(transport)
    try:
        sender.sendall(payload)
        sender.close()
        time.sleep(SETTLE_S)
        before = bytes_queued(receiver)
        buf = bytearray(len(payload))
        t0 = time.perf_counter()
        got = receiver.recv_into(buf, len(payload), socket.MSG_WAITALL)
        wall = time.perf_counter() - t0
        return {"queued_before": before, "queued_after": bytes_queued(receiver), "recv_s": wall,
                "intact": got == len(payload) and hashlib.sha256(buf).digest() == hashlib.sha256(payload).digest()}
    finally:
        sender.close()
        receiver.close()


@pytest.mark.claim("IO2")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sent_bytes_wait_in_receive_buffer_before_recv(benchmark, evidence, transport):
    payload = os.urandom(PROBE_BYTES)
    rounds = [queued_after_sender_closed(transport, payload) for _ in range(ROUNDS)]
    benchmark.group = "IO2 receiving bytes already queued in the kernel"
    replay(benchmark, [r["recv_s"] for r in rounds])

    evidence.condition(transport=transport, probe_bytes=PROBE_BYTES, settle_s=SETTLE_S)
    evidence.figure("queued_before_recv", unit="B", samples=[r["queued_before"] for r in rounds])
    evidence.figure("queued_after_recv", unit="B", samples=[r["queued_after"] for r in rounds])
    evidence.figure("rounds_with_payload_intact", sum(r["intact"] for r in rounds), "rounds")
    if not all(r["intact"] for r in rounds):
        pytest.fail("recv did not return the payload that was sent")
    evidence.support(
        "queued_fraction_before_recv", op=">=", threshold=MIN_QUEUED_FRACTION, unit="",
        samples=[r["queued_before"] / PROBE_BYTES for r in rounds],
        why="with the sender closed and no recv yet, FIONREAD counts the payload in the receiver's kernel buffer",
    )
    evidence.settle(benchmark)


def push_until_full(rcvbuf: int) -> dict:
    """Fill a fresh loopback TCP connection with non-blocking sends; return where the bytes are."""
    sender, receiver = connected_pair("tcp", rcvbuf=rcvbuf, sndbuf=SENDER_SNDBUF)
    try:
        sender.setblocking(False)
        chunk, accepted = bytes(4096), 0
        t0 = time.perf_counter()
        while True:
            try:
                accepted += sender.send(chunk)
            except BlockingIOError:
                break
        wall = time.perf_counter() - t0
        time.sleep(SETTLE_S)
        return {
            "accepted": accepted, "in_receiver": bytes_queued(receiver), "unsent_in_sender": bytes_unsent(sender),
            "rcvbuf": receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            "sndbuf": sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), "wall": wall,
        }
    finally:
        sender.close()
        receiver.close()


@pytest.mark.claim("IO2")
def test_receive_buffer_size_bounds_what_sender_can_push(benchmark, evidence):
    runs = [(push_until_full(SMALL_RCVBUF), push_until_full(LARGE_RCVBUF)) for _ in range(ROUNDS)]
    benchmark.group = "IO2 non-blocking sender filling the kernel buffers"
    replay(benchmark, [large["wall"] for _, large in runs])

    evidence.condition(transport="tcp", sender_sndbuf=SENDER_SNDBUF)
    for i, size in enumerate(("small", "large")):
        for key in ("accepted", "in_receiver", "unsent_in_sender", "rcvbuf", "sndbuf"):
            evidence.figure(f"{size}_{key}", unit="B", samples=[r[i][key] for r in runs])
    every = [r for pair in runs for r in pair]
    evidence.support(
        "accounted_fraction_min", value=min((r["in_receiver"] + r["unsent_in_sender"]) / r["accepted"] for r in every),
        op=">=", threshold=MIN_ACCOUNTED_FRACTION, unit="",
        why="every byte send() accepted sits in a kernel buffer: the peer's queue or the sender's",
    )
    evidence.support(
        "receiver_fill_max", value=max(r["in_receiver"] / r["rcvbuf"] for r in every), op="<=", threshold=1.0,
        unit="x SO_RCVBUF",
        why="the receive queue never holds more than the receive buffer allows",
    )
    evidence.figure("accepted_over_buffers_max", max(r["accepted"] / (r["rcvbuf"] + r["sndbuf"]) for r in every),
                    "x (rcvbuf+sndbuf)")
    evidence.support(
        "accepted_growth_with_rcvbuf", op=">=", threshold=MIN_ACCEPTED_GROWTH, unit="x",
        samples=[large["accepted"] / small["accepted"] for small, large in runs],
        why=f"a {LARGE_RCVBUF // SMALL_RCVBUF}x larger SO_RCVBUF lets the sender push more before blocking",
    )
    evidence.note("AF_UNIX stream sockets charge queued bytes to the sender's SO_SNDBUF; "
                  "only TCP shows the receiver's bound")
    evidence.settle(benchmark)
