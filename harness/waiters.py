"""Descriptor sets and zero-timeout waits (select, poll, epoll) for IO7, in pytest and in a fresh child.

Why this exists: the cost a poll pays per watched descriptor depends on the process it runs
in (with other threads, the descriptor table is shared and the kernel takes a reference on
every descriptor it polls). IO7 times the waits in pytest's process and again in a fresh
single-threaded child (harness.children.wait_cost); both build their sets and time their
batches with these same functions.
"""
from __future__ import annotations

import contextlib
import select
import socket
import time

KINDS = ("select", "poll", "epoll")


@contextlib.contextmanager
def descriptor_set(n_idle: int):
    """n_idle silent socket ends plus one that holds an unread byte (always ready); closes all.

    Both ends of a silent socketpair are idle, so n_idle descriptors cost n_idle/2 pairs; the
    ready end is made last, so it has the highest number. Yields the descriptors.
    """
    pairs = []
    try:
        for _ in range((n_idle + 1) // 2):
            pairs.append(socket.socketpair())
        idle = [s.fileno() for pair in pairs for s in pair][:n_idle]
        writer, ready = socket.socketpair()
        pairs.append((writer, ready))
        writer.send(b"!")
        yield idle + [ready.fileno()]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def make_wait(kind: str, fds: list[int], stack: contextlib.ExitStack):
    """A zero-timeout wait on `fds` for reading with one mechanism; returns the ready count."""
    if kind == "select":
        return lambda: len(select.select(fds, [], [], 0)[0])
    if kind not in KINDS:
        raise ValueError(f"unknown waiter {kind!r}; choose one of {', '.join(KINDS)}")
    poller = stack.enter_context(select.epoll()) if kind == "epoll" else select.poll()
    flag = select.EPOLLIN if kind == "epoll" else select.POLLIN
    for fd in fds:
        poller.register(fd, flag)
    return lambda: len(poller.poll(0))


def batch(wait, calls: int) -> tuple[float, int]:
    """Seconds per wait over `calls` back-to-back waits, and the last wait's ready count.

    A batch keeps perf_counter's own overhead (tens of ns) out of a microsecond-scale call.
    """
    t0 = time.perf_counter()
    for _ in range(calls):
        ready = wait()
    return (time.perf_counter() - t0) / calls, ready


def paired_batches(kind: str, fds: list[int], base_fds: list[int], calls: int, stack: contextlib.ExitStack):
    """A round function timing one batch on `fds` and one on `base_fds`: (cost, base cost, ready, base ready)."""
    wait, base_wait = make_wait(kind, fds, stack), make_wait(kind, base_fds, stack)
    batch(wait, calls), batch(base_wait, calls)  # warm-up: the first touch of every structure

    def one_round():
        (cost, ready), (base, base_ready) = batch(wait, calls), batch(base_wait, calls)
        return cost, base, ready, base_ready

    return one_round
