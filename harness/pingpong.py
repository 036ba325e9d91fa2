"""One ping-pong body, many worlds: what a switch costs between processes, threads and tasks.

Exists because PR3/TH3 (creation and switch cost) and CO4 (task against thread switch) time
the same ping-pong: two units echo a byte back and forth, written once (``bounce``/``volley``
and their async twins) and run in each world of WORLDS, a dict of factories. One switch is one
round trip / 2: each round trip hands the CPU from one unit to the other and back.

How a world is timed: both partners are pinned to one CPU (``one_cpu``), so a switch is that
CPU going from one unit to the other; left free on two CPUs, the partner wakes on the other CPU
and the figure becomes a cross-CPU wake-up (idle exit, IPI) whatever the unit kind. Partners,
pipes and queues are made before the clock; each world is warmed up once. A round times
ROUND_TRIPS round trips of every world back to back, timed by the volley itself (inside the
event loop for tasks, so entering the loop never counts). During the rounds the collector is
kept off pytest's own heap (gc.freeze): a collection then costs what it costs in a small
program, not a walk over every object the test session made.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator

STOP = b"stop"
PING = b"x"
START_METHOD = "fork"  # the echo process's start method in "process-pipe"; the others have a world each


def bounce(recv, send) -> None:
    """The echoing partner: send back whatever arrives until STOP."""
    while (msg := recv()) != STOP:
        send(msg)


def pinned_bounce(cpu: int, recv, send) -> None:
    """bounce, on `cpu`: a forkserver's child inherits the server's CPUs, not its caller's (one_cpu)."""
    os.sched_setaffinity(0, {cpu})
    bounce(recv, send)


def volley(recv, send, n: int) -> float:
    """n round trips with the partner; returns their seconds."""
    t0 = time.perf_counter()
    for _ in range(n):
        send(PING)
        recv()
    return time.perf_counter() - t0


async def abounce(recv, send) -> None:
    while (msg := await recv()) != STOP:
        await send(msg)


async def avolley(recv, send, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await send(PING)
        await recv()
    return time.perf_counter() - t0


class FutureSlot:
    """A one-message mailbox on a bare future: the least a task hand-off can cost on a loop."""

    def __init__(self, loop):
        self._loop = loop
        self._fut = loop.create_future()

    async def put(self, msg) -> None:
        self._fut.set_result(msg)

    async def get(self):
        msg = await self._fut
        self._fut = self._loop.create_future()  # before replying, so the next put finds it
        return msg


Run = Callable[[int], float]  # n round trips -> seconds


@contextlib.contextmanager
def _tasks(make, loop) -> Iterator[Run]:
    to_partner, from_partner = make(), make()  # an asyncio.Queue binds to the loop at first use
    partner = loop.create_task(abounce(to_partner.get, from_partner.put))
    try:
        yield lambda n: loop.run_until_complete(avolley(from_partner.get, to_partner.put, n))
    finally:
        if not partner.done():
            try:
                loop.run_until_complete(to_partner.put(STOP))
            except asyncio.InvalidStateError:  # a failed volley left the slot full: no STOP fits
                partner.cancel()  # stop it without a message, rather than wait for a timeout
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(asyncio.wait_for(partner, 10))
        elif not partner.cancelled():
            partner.result()  # the partner failed first: surface its own error


@contextlib.contextmanager
def _pipe(start_partner) -> Iterator[Run]:
    here, there = multiprocessing.Pipe()
    try:
        partner = start_partner(bounce, (there.recv_bytes, there.send_bytes))
        try:
            yield lambda n: volley(here.recv_bytes, here.send_bytes, n)
        finally:
            here.send_bytes(STOP)
            partner.join(10)
            if isinstance(partner, multiprocessing.process.BaseProcess) and partner.is_alive():
                partner.kill()
                partner.join()
    finally:
        here.close()
        there.close()


@contextlib.contextmanager
def _thread_queue() -> Iterator[Run]:
    to_partner, from_partner = queue.SimpleQueue(), queue.SimpleQueue()
    partner = _start_thread(bounce, (to_partner.get, from_partner.put))
    try:
        yield lambda n: volley(from_partner.get, to_partner.put, n)
    finally:
        to_partner.put(STOP)
        partner.join(10)


@contextlib.contextmanager
def _channel_alone(make_ends) -> Iterator[Run]:
    """The channel without a switch: one unit sends into it and receives from it itself, a message each way
    per switch, so (a world's switch) - (this) is the switch net of its channel."""
    send, recv, close = make_ends()
    try:
        yield lambda n: volley(recv, send, 2 * n)
    finally:
        close()


def _pipe_ends():
    here, there = multiprocessing.Pipe()
    return here.send_bytes, there.recv_bytes, lambda: (here.close(), there.close())


def _queue_ends():
    q = queue.SimpleQueue()
    return q.put, q.get, lambda: None


def _start_thread(target, args) -> threading.Thread:
    t = threading.Thread(target=target, args=args, name="pingpong-partner")
    t.start()
    return t


def _start_process(target, args, method: str = START_METHOD):
    """The echo process, started by `method` and pinned to this thread's first CPU (one_cpu's)."""
    cpu = min(os.sched_getaffinity(0))
    p = multiprocessing.get_context(method).Process(target=pinned_bounce, args=(cpu, *args))
    p.start()
    return p


# world -> factory(loop) of a context manager that starts the partner and yields run(n).
WORLDS = {
    "process-pipe": lambda loop: _pipe(_start_process),
    # The same echo process started by forkserver or spawn: a fresh interpreter rather than a copy of this one.
    "process-pipe-forkserver": lambda loop: _pipe(lambda t, a: _start_process(t, a, "forkserver")),
    "process-pipe-spawn": lambda loop: _pipe(lambda t, a: _start_process(t, a, "spawn")),
    "thread-pipe": lambda loop: _pipe(_start_thread),
    "thread-queue": lambda loop: _thread_queue(),
    "coroutine-queue": lambda loop: _tasks(asyncio.Queue, loop),
    "coroutine-future": lambda loop: _tasks(lambda: FutureSlot(loop), loop),
    # Channels alone (no partner, no switch): the baselines that net switches of their channel.
    "channel-pipe": lambda loop: _channel_alone(_pipe_ends),
    "channel-queue": lambda loop: _channel_alone(_queue_ends),
}
CHANNEL_OF = {"process-pipe": "channel-pipe", "process-pipe-forkserver": "channel-pipe",
              "process-pipe-spawn": "channel-pipe", "thread-pipe": "channel-pipe", "thread-queue": "channel-queue"}


@contextlib.contextmanager
def one_cpu() -> Iterator[int]:
    """Pin this thread, and the partners it starts, to one CPU (see the module docstring)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield min(before)
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def frozen_heap():
    """Keep the collector off every object made so far (pytest's heap) for the block."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def switch_rounds(worlds, loop, *, round_trips: int, sample) -> dict[str, list[float]]:
    """Per-switch seconds of every world, one sample per round; `sample(one_round)` runs the rounds
    (harness.stats.sample_rounds with the caller's bounds and done())."""
    with one_cpu(), frozen_heap(), contextlib.ExitStack() as stack:
        # The echo processes first: forking while partner threads run is unsafe (3.12 warns).
        ordered = sorted(worlds, key=lambda w: not w.startswith("process-"))
        run = {w: stack.enter_context(WORLDS[w](loop)) for w in ordered}
        for fn in run.values():
            fn(round_trips)  # warm up each world once outside the samples
        rounds = sample(lambda: {w: run[w](round_trips) / (2 * round_trips) for w in worlds})
    return {w: [r[w] for r in rounds] for w in worlds}


def ratios(samples: dict[str, list[float]], num: str, den: str) -> list[float]:
    """Same-round ratios num / den."""
    return [a / b for a, b in zip(samples[num], samples[den])]


def net(samples: dict[str, list[float]], world: str) -> list[float]:
    """Per round: `world`'s switch minus its channel alone (CHANNEL_OF), the switch net of the channel."""
    return [s - c for s, c in zip(samples[world], samples[CHANNEL_OF[world]])]


def net_ratios(samples: dict[str, list[float]], num: str, den: str) -> list[float]:
    """Same-round ratios of switches net of their channels (the experiment's control keeps the denominator above 0)."""
    return [a / b for a, b in zip(net(samples, num), net(samples, den))]
