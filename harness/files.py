"""Temporary files whose pages sit in the page cache, for experiments that time reads from memory.

Why this exists: a read of a file that is not cached waits on the disk, and then the figure
mixes the device's time with the copy's. The copy experiments (IO1, IO3) need a file whose
every page is already in the kernel's page cache, so that a read is *only* the kernel copying
memory into the caller's buffer. The file is written, fsynced (so that no writeback runs
under a later measurement), read once, and then checked with ``preadv(RWF_NOWAIT)``, which
fails instead of waiting when a page would have to come from the device.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

CHUNK_BYTES = 1 << 20


def fully_cached(path: str) -> bool:
    """True when every page of the file is in the page cache (no read of it would touch the disk)."""
    if not hasattr(os, "RWF_NOWAIT"):
        raise OSError("RWF_NOWAIT needs Linux 4.14+")
    buf = bytearray(CHUNK_BYTES)
    fd = os.open(path, os.O_RDONLY)
    try:
        offset, size = 0, os.fstat(fd).st_size
        while offset < size:
            try:
                n = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
            except BlockingIOError:  # this page would have to come from the device
                return False
            if n == 0:
                break
            offset += n
        return offset >= size
    finally:
        os.close(fd)


@contextlib.contextmanager
def page_cached_file(size: int, directory: str | None = None) -> Iterator[str]:
    """A temporary file of `size` bytes whose pages are all in the page cache; deleted on exit.

    The content is one random 1 MiB chunk repeated: the bytes' values do not matter to a copy,
    and writing them this way costs far less than os.urandom(size).
    """
    chunk = os.urandom(CHUNK_BYTES)
    fd, path = tempfile.mkstemp(prefix="page-cached-", suffix=".bin", dir=directory)
    try:
        try:
            written = 0
            while written < size:
                written += os.write(fd, memoryview(chunk)[: min(CHUNK_BYTES, size - written)])
            os.fsync(fd)
        finally:
            os.close(fd)
        with open(path, "rb", buffering=0) as f:  # the one read that brings any evicted page back
            buf = bytearray(CHUNK_BYTES)
            while f.readinto(buf):
                pass
        if not fully_cached(path):
            raise RuntimeError(f"{path}: {size} bytes did not stay in the page cache (memory pressure?)")
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
