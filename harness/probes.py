"""Small kernel probes several experiments read: queued bytes, schedstat, open descriptors, process groups.

Each exists once here so that every experiment reads the kernel the same way (and spells
the resulting condition or figure the same way).
"""
from __future__ import annotations

import fcntl
import os
import struct
import termios

SIOCOUTQNSD = 0x894B  # linux/sockios.h: bytes a TCP sender has queued but not yet sent


def bytes_queued(fd_or_sock, request: int = termios.FIONREAD) -> int:
    """Bytes waiting in the kernel for this descriptor (FIONREAD: received, not yet read)."""
    fd = fd_or_sock if isinstance(fd_or_sock, int) else fd_or_sock.fileno()
    return struct.unpack("i", fcntl.ioctl(fd, request, b"\0" * 4))[0]


def bytes_unsent(sock) -> int:
    """Bytes a TCP sender holds in its send queue, not yet sent (SIOCOUTQNSD)."""
    return bytes_queued(sock, SIOCOUTQNSD)


def schedstat(path: str = "/proc/thread-self/schedstat") -> tuple[float, float, int]:
    """(seconds on a CPU, seconds runnable but waiting in a run queue, timeslices) of a thread.

    The kernel counts the first two in nanoseconds per thread, where os.times and psutil
    count 10 ms ticks. `path` may name another task: /proc/<pid>/task/<tid>/schedstat.
    """
    with open(path) as f:
        on_cpu, waiting, slices = f.read().split()
    return int(on_cpu) / 1e9, int(waiting) / 1e9, int(slices)


def has_schedstat() -> bool:
    try:
        schedstat()
        return True
    except (OSError, ValueError):
        return False


def open_descriptors() -> dict[int, str]:
    """This process's open descriptors and what each points to (/proc/self/fd)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed between the listing and the readlink (the listing's own fd)
            continue
    return found
