"""CM1: processes, threads and coroutines communicate through pipes, queues and semaphores or
locks.

What is measured, for each channel in each world and a few payload sizes:
- process world: multiprocessing.Pipe, multiprocessing.Queue, shared memory
  (multiprocessing.shared_memory) guarded by two multiprocessing.Semaphores per direction,
  and socket.socketpair;
- thread world: queue.Queue, and socket.socketpair between two threads;
- coroutine world: asyncio.Queue between two tasks, on asyncio and on uvloop.
The same echo peer runs at the far end of every channel. The benchmark is one round trip
(send a message, receive the echo); throughput is a one-way stream of messages that the peer
counts and acknowledges, measured after the benchmark (messages/s, and MB/s).

How it is decided: the claim is that these are working ways to communicate, so each channel
must deliver every message intact. Delivery is the peer's own count, reported on END: the
stream messages it received and their byte total must equal what the client sent. On channels
that copy (pipes, sockets, shared memory, multiprocessing.Queue) every echo must also equal,
byte for byte, the message sent. Two counts follow from the test's construction and are
figures: the echoes the peer counted (the client waits for each echo, which the peer sends only
after counting it; a reply that never comes raises, timeout or EOF, and fails the test), and,
on in-process queues (queue.Queue, asyncio.Queue), the echoes that are the very object sent
(they pass references, so an echo there cannot differ). Latency and throughput are the figures
the table is for; no verdict rests on them.

The opposite world, in every part: the same kind of channel to the same kind of peer, wrapped
in a fault that drops the first stream message and flips one byte of the first echo, goes
through the same exchange, tally and counts, and is judged by the same checks: each check
decides only if the faulty channel fails it (harness.evidence.Opposite).

Known traps: queue.Queue and asyncio.Queue pass *references*; no byte is copied, so their
"MB/s" is a rate of handing over pointers, not a copy bandwidth, and it grows with the
payload for free. multiprocessing.Queue pickles and sends through a pipe from a feeder
thread, so its round trip includes two thread hand-offs per direction. The reply comparison
(a memcmp) sits inside the timer; it is far cheaper than the copies it checks. Peers are
started (fork) before any clock runs. Messages rotate through a few distinct random buffers
made beforehand.
"""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import NamedTuple

import pytest

from harness.aio import bench_async
from harness.evidence import Opposite
from harness.scale import pick

PAYLOADS = pick(quick=(64, 64 << 10), full=(64, 64 << 10, 1 << 20))
ROUNDS = pick(quick=5, full=15)
ROUND_TRIP_BYTES = pick(quick=4 << 20, full=16 << 20)  # bytes echoed per round, bounds the time
ROUND_TRIPS_MAX = 200  # per round: small payloads
ROUND_TRIPS_MIN = 10  # per round: large payloads
STREAM_BYTES = pick(quick=8 << 20, full=64 << 20)  # per stream sample
STREAM_MESSAGES_MAX = 2000
STREAM_SAMPLES = 3
DISTINCT_MESSAGES = 4
START_METHOD = "fork"  # peers are started outside the timer; fork starts them fastest
CONTROL_STREAM_MESSAGES = 8  # the faulty control channel's stream
# Claim: a working channel loses and corrupts nothing (0); negation: it loses or corrupts at least one.
LOST_ALLOWED = 0
RECV_TIMEOUT_S = 20.0  # a dead peer fails the test instead of hanging it (where a timeout is free)
ECHO, STREAM, END, QUIT = b"ESFQ"

SYNC_CHANNELS = [
    ("process", "Pipe"),
    ("process", "Queue"),
    ("process", "shm+Semaphore"),
    ("process", "socketpair"),
    ("thread", "queue.Queue"),
    ("thread", "socketpair"),
]


def round_trips_for(size: int) -> int:
    return max(ROUND_TRIPS_MIN, min(ROUND_TRIPS_MAX, ROUND_TRIP_BYTES // size))


def stream_messages_for(size: int) -> int:
    return max(8, min(STREAM_MESSAGES_MAX, STREAM_BYTES // size))


def payload_id(size: int) -> str:
    return f"{size >> 20}MiB" if size >= 1 << 20 else f"{size >> 10}KiB" if size >= 1 << 10 else f"{size}B"


def messages(tag: int, size: int) -> list[bytes]:
    return [bytes([tag]) + os.urandom(size - 1) for _ in range(DISTINCT_MESSAGES)]


class End(NamedTuple):
    """One end of a channel: send(bytes) and recv() -> bytes-like."""

    send: Callable
    recv: Callable


SUMMARY = struct.Struct("<qqq")  # the peer's own count: stream messages, stream bytes, echoes


def serve(end: End) -> None:
    """The echo peer: echoes ECHO messages, counts STREAM messages, reports its counts on END."""
    count = nbytes = echoed = 0
    while True:
        msg = end.recv()
        tag = msg[0]
        if tag == ECHO:
            end.send(msg)
            echoed += 1
        elif tag == STREAM:
            count += 1
            nbytes += len(msg)
        elif tag == END:
            end.send(SUMMARY.pack(count, nbytes, echoed))
            count = nbytes = echoed = 0
        else:
            return


# --- the channels: each factory returns the client's end, the peer's end, and what to close on
# --- the peer's side once the peer has stopped (at once in the parent, if the peer is a child)


class ShmSlot:
    """A one-message slot in shared memory: `empty` and `full` semaphores hand it back and forth."""

    def __init__(self, buf: memoryview, ctx):
        self.buf, self.full, self.empty = buf, ctx.Semaphore(0), ctx.Semaphore(1)

    def _acquire(self, sem) -> None:
        if not sem.acquire(timeout=RECV_TIMEOUT_S):
            raise TimeoutError("shared-memory peer did not answer")

    def send(self, msg) -> None:
        self._acquire(self.empty)
        n = len(msg)
        self.buf[:8] = n.to_bytes(8, "little")
        self.buf[8:8 + n] = msg
        self.full.release()

    def recv(self) -> bytes:
        self._acquire(self.full)
        n = int.from_bytes(self.buf[:8], "little")
        msg = bytes(self.buf[8:8 + n])  # copy out, as a pipe read would
        self.empty.release()
        return msg


def _socket_end(sock: socket.socket) -> End:
    header = struct.Struct("<I")

    def recv_exact(n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = sock.recv_into(view[got:])
            if not k:
                raise EOFError("socketpair peer closed")
            got += k
        return buf

    def send(msg) -> None:
        sock.sendall(header.pack(len(msg)))
        sock.sendall(msg)

    return End(send, lambda: recv_exact(header.unpack(recv_exact(header.size))[0]))


def _pipe(size, ctx, stack):
    a, b = ctx.Pipe()
    stack.callback(a.close)
    stack.callback(b.close)
    return End(a.send_bytes, a.recv_bytes), End(b.send_bytes, b.recv_bytes), [b.close]


def _mp_queue(size, ctx, stack):
    to_peer = ctx.Queue()
    stack.callback(to_peer.join_thread)  # the stack runs these last-in first-out: close, then join
    stack.callback(to_peer.close)
    from_peer = ctx.Queue()
    stack.callback(from_peer.join_thread)
    stack.callback(from_peer.close)
    return End(to_peer.put, lambda: from_peer.get(timeout=RECV_TIMEOUT_S)), End(from_peer.put, to_peer.get), []


def _thread_queue(size, ctx, stack):
    to_peer, from_peer = queue.Queue(), queue.Queue()
    return End(to_peer.put, lambda: from_peer.get(timeout=RECV_TIMEOUT_S)), End(from_peer.put, to_peer.get), []


def _socketpair(size, ctx, stack):
    a, b = socket.socketpair()
    stack.callback(a.close)
    stack.callback(b.close)
    return _socket_end(a), _socket_end(b), [b.close]


def _shared_memory(size, ctx, stack):
    slot_bytes = 8 + max(size, 16)
    shm = shared_memory.SharedMemory(create=True, size=2 * slot_bytes)
    stack.callback(shm.unlink)  # last-in first-out: views released, then close, then unlink
    stack.callback(shm.close)
    views = [shm.buf[:slot_bytes], shm.buf[slot_bytes:2 * slot_bytes]]
    for view in views:
        stack.callback(view.release)
    to_peer, from_peer = ShmSlot(views[0], ctx), ShmSlot(views[1], ctx)
    return End(to_peer.send, from_peer.recv), End(from_peer.send, to_peer.recv), []


# Every resource is registered on the ExitStack as it is made: a failed open still closes it.
CHANNELS = {
    "Pipe": _pipe,
    "Queue": _mp_queue,
    "queue.Queue": _thread_queue,
    "socketpair": _socketpair,
    "shm+Semaphore": _shared_memory,
}
PEERS = {
    "process": lambda ctx, end: ctx.Process(target=serve, args=(end,), daemon=True),
    "thread": lambda ctx, end: threading.Thread(target=serve, args=(end,), name="cm1-peer"),
}
COPYING = {("process", c) for c in CHANNELS} | {("thread", "socketpair")}  # the rest pass references


# --- measuring and deciding ---------------------------------------------------------------


class Tally:
    """What the client sent and got back, against what the peer counted on its side.

    Delivery is the peer's count (reported on END), not the client's: a client that got
    an echo back cannot tell by itself whether the peer saw every message.
    """

    def __init__(self):
        self.echoes = self.echoed_by_peer = self.corrupted = self.same_object = 0
        self.stream_sent = self.stream_delivered = 0
        self.stream_bytes_sent = self.stream_bytes_delivered = 0
        self.stream_s: list[float] = []

    def echo(self, msg, reply) -> None:
        self.echoes += 1
        self.same_object += reply is msg
        self.corrupted += reply != msg

    def stream(self, count: int, size: int, summary, seconds: float) -> None:
        got_count, got_bytes, echoed = SUMMARY.unpack(summary)
        self.stream_sent += count
        self.stream_delivered += got_count
        self.echoed_by_peer += echoed
        self.stream_bytes_sent += count * size
        self.stream_bytes_delivered += got_bytes
        self.stream_s.append(seconds)


def echo_once(client: End, msg, tally: Tally) -> None:
    client.send(msg)
    tally.echo(msg, client.recv())


def stream_once(client: End, streams, count: int, size: int, tally: Tally) -> None:
    t0 = time.perf_counter()
    for i in range(count):
        client.send(streams[i % DISTINCT_MESSAGES])
    client.send(bytes([END]))
    summary = client.recv()
    tally.stream(count, size, summary, time.perf_counter() - t0)


class Faulty(NamedTuple):
    """The control's channel end: loses the first stream message, flips a byte of the first echo."""

    end: End
    done: set

    def send(self, msg) -> None:
        if msg[0] == STREAM and "lost" not in self.done:
            self.done.add("lost")
            return
        self.end.send(msg)

    def recv(self):
        msg = self.end.recv()
        if msg[0] == ECHO and "flipped" not in self.done:
            self.done.add("flipped")
            msg = bytes(msg[:-1]) + bytes([msg[-1] ^ 1])
        return msg


def open_channel(world: str, channel: str, size: int, stack: contextlib.ExitStack) -> End:
    """The client's end of `channel` to a peer of `world`, started; the stack stops and closes them."""
    ctx = multiprocessing.get_context(START_METHOD)
    # From the channel's first resource on, the stack undoes whatever was made: a failed
    # open or start still closes the sockets and unlinks the shared-memory segment.
    client, peer_end, redundant_in_parent = CHANNELS[channel](size, ctx, stack)
    peer = PEERS[world](ctx, peer_end)
    peer.start()
    stack.callback(stop_peer, peer, client, world)  # runs before the channel closes
    if world == "process":
        for close in redundant_in_parent:  # the child holds its own copy
            close()
    return client


def faulty_control(world: str, channel: str, size: int) -> Tally:
    """The opposite world: the same exchange and tally over the same kind of channel and peer, with a fault
    that loses one stream message and corrupts one echo."""
    tally = Tally()
    with contextlib.ExitStack() as stack:
        faulty = Faulty(open_channel(world, channel, size, stack), set())
        for msg in messages(ECHO, size):
            echo_once(faulty, msg, tally)
        stream_once(faulty, messages(STREAM, size), CONTROL_STREAM_MESSAGES, size, tally)
    return tally


async def faulty_async_control(size: int) -> Tally:
    """The opposite world of the asyncio.Queue test: the same exchange with the same fault, on two queues."""
    to_peer, from_peer, tally, done = asyncio.Queue(), asyncio.Queue(), Tally(), set()

    async def send(msg):
        if msg[0] == STREAM and "lost" not in done:
            done.add("lost")
            return
        await to_peer.put(msg)

    async def recv():
        msg = await from_peer.get()
        if msg[0] == ECHO and "flipped" not in done:
            done.add("flipped")
            msg = bytes(msg[:-1]) + bytes([msg[-1] ^ 1])
        return msg

    peer = asyncio.get_running_loop().create_task(aserve(to_peer, from_peer))
    try:
        for msg in messages(ECHO, size):
            await send(msg)
            tally.echo(msg, await recv())
        streams, t0 = messages(STREAM, size), time.perf_counter()
        for i in range(CONTROL_STREAM_MESSAGES):
            await send(streams[i % DISTINCT_MESSAGES])
        await send(bytes([END]))
        tally.stream(CONTROL_STREAM_MESSAGES, size, await recv(), time.perf_counter() - t0)
    finally:
        to_peer.put_nowait(bytes([QUIT]))
        await asyncio.wait_for(peer, RECV_TIMEOUT_S)
    return tally


def settle(benchmark, evidence, tally: Tally, control: Tally, world: str, channel: str, size: int) -> None:
    stream_count = stream_messages_for(size)
    evidence.condition(world=world, channel=channel, payload_bytes=size)
    latency = evidence.figure("round_trip_latency", unit="s", samples=benchmark.stats.stats.data)
    evidence.figure("round_trips_per_s", 1 / latency, unit="1/s")
    evidence.figure("stream_messages_per_s", unit="msg/s", samples=[stream_count / s for s in tally.stream_s])
    evidence.figure("stream_MB_per_s", unit="MB/s", samples=[stream_count * size / s / 1e6 for s in tally.stream_s])
    evidence.figure("stream_messages_sent", tally.stream_sent, unit="messages")
    evidence.figure("echoes_received", tally.echoes, unit="messages")
    evidence.figure("echoes_counted_by_peer", tally.echoed_by_peer, unit="messages")
    faulty = f"the same {channel} to a {world} peer with a fault (one stream message dropped, one echo byte flipped)"
    copies = (world, channel) in COPYING
    if not copies:
        evidence.figure("echoes_that_are_the_sent_object", tally.same_object / tally.echoes, unit="fraction")
        evidence.note("in-process queue: messages pass by reference (the fraction of echoes that are the very "
                      "object sent is a figure), so no byte is copied, an echo cannot differ from what was "
                      "sent, and MB/s counts no copied bytes; delivery is decided by the peer's counts")
    evidence.support("stream_messages_lost", value=tally.stream_sent - tally.stream_delivered, op="<=",
                     threshold=LOST_ALLOWED, unit="messages",
                     why="the peer counted every stream message the client sent",
                     opposite=Opposite(faulty, value=control.stream_sent - control.stream_delivered))
    evidence.support("stream_bytes_lost", value=tally.stream_bytes_sent - tally.stream_bytes_delivered, op="<=",
                     threshold=LOST_ALLOWED, unit="bytes", why="the peer received every byte of the stream",
                     opposite=Opposite(faulty, value=control.stream_bytes_sent - control.stream_bytes_delivered))
    if copies:
        evidence.support("echoes_corrupted", value=tally.corrupted, op="<=", threshold=LOST_ALLOWED, unit="messages",
                         why="every echo equals the message sent, byte for byte (the channel copies)",
                         opposite=Opposite(faulty, value=control.corrupted))
    evidence.settle(benchmark)


@pytest.mark.claim("CM1")
@pytest.mark.parametrize("payload", PAYLOADS, ids=payload_id)
@pytest.mark.parametrize("world,channel", SYNC_CHANNELS, ids=[f"{w}-{c}" for w, c in SYNC_CHANNELS])
def test_channel_delivers_every_message_intact(benchmark, evidence, world, channel, payload):
    echoes, streams, tally = messages(ECHO, payload), messages(STREAM, payload), Tally()
    turn = iter(range(1 << 62))
    with contextlib.ExitStack() as stack:
        client = open_channel(world, channel, payload, stack)
        benchmark.group = f"CM1 round trip, {payload_id(payload)} payload"
        benchmark.pedantic(lambda: echo_once(client, echoes[next(turn) % DISTINCT_MESSAGES], tally),
                           rounds=ROUNDS, iterations=round_trips_for(payload), warmup_rounds=1)
        for _ in range(STREAM_SAMPLES):
            stream_once(client, streams, stream_messages_for(payload), payload, tally)
    settle(benchmark, evidence, tally, faulty_control(world, channel, payload), world, channel, payload)


def stop_peer(peer, client: End, world: str) -> None:
    try:
        client.send(bytes([QUIT]))
    except (OSError, TimeoutError, ValueError):
        pass  # the peer is gone already; the channel still closes
    peer.join(timeout=10)
    if world == "process" and peer.is_alive():
        peer.kill()
        peer.join()


async def aserve(inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
    """serve(), as a task."""
    count = nbytes = echoed = 0
    while True:
        msg = await inbox.get()
        tag = msg[0]
        if tag == ECHO:
            await outbox.put(msg)
            echoed += 1
        elif tag == STREAM:
            count += 1
            nbytes += len(msg)
        elif tag == END:
            await outbox.put(SUMMARY.pack(count, nbytes, echoed))
            count = nbytes = echoed = 0
        else:
            return


@pytest.mark.claim("CM1")
@pytest.mark.parametrize("payload", PAYLOADS, ids=payload_id)
def test_asyncio_queue_delivers_every_message_intact(benchmark, evidence, loop, payload):
    to_peer, from_peer = asyncio.Queue(), asyncio.Queue()
    echoes, streams, tally = messages(ECHO, payload), messages(STREAM, payload), Tally()
    turn = iter(range(1 << 62))
    count = stream_messages_for(payload)

    async def round_trip():
        msg = echoes[next(turn) % DISTINCT_MESSAGES]
        await to_peer.put(msg)
        tally.echo(msg, await from_peer.get())

    async def stream() -> None:
        t0 = time.perf_counter()
        for i in range(count):
            await to_peer.put(streams[i % DISTINCT_MESSAGES])
        await to_peer.put(bytes([END]))
        tally.stream(count, payload, await from_peer.get(), time.perf_counter() - t0)

    async def stop_peer():
        if not peer.done():
            to_peer.put_nowait(bytes([QUIT]))
            await asyncio.wait([peer], timeout=RECV_TIMEOUT_S)
            peer.cancel()  # no-op once it has returned
        # return_exceptions: a dead peer's error is returned, never raised over the test's own
        return (await asyncio.gather(peer, return_exceptions=True))[0]

    peer = loop.create_task(aserve(to_peer, from_peer))
    try:
        benchmark.group = f"CM1 round trip, {payload_id(payload)} payload"
        bench_async(benchmark, loop, round_trip, rounds=ROUNDS, batch=round_trips_for(payload))
        for _ in range(STREAM_SAMPLES):
            loop.run_until_complete(stream())
    finally:
        peer_outcome = loop.run_until_complete(stop_peer())
    if isinstance(peer_outcome, BaseException):  # the test body passed, but the peer did not end cleanly
        raise AssertionError(f"the asyncio.Queue peer ended with {peer_outcome!r}") from peer_outcome
    control = loop.run_until_complete(faulty_async_control(payload))
    settle(benchmark, evidence, tally, control, "coroutine", "asyncio.Queue", payload)
