"""Files for the copy experiments: temporary files whose pages sit in the page cache, and the read that copies them.

Why this exists: a read of a file that is not cached waits on the disk, and then the figure
mixes the device's time with the copy's. The copy experiments (IO1, IO3) need a file whose
every page is already in the kernel's page cache, so that a read is *only* the kernel copying
memory into the caller's buffer. The file is written, fsynced (so that no writeback runs
under a later measurement), read once, and then checked with ``preadv(RWF_NOWAIT)``, which
fails instead of waiting when a page would have to come from the device.
"""
from __future__ import annotations

import contextlib
import mmap
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


# --- reading a file into a user buffer: the kernel-to-user copy that IO1 and IO3 both time ---
PAGE_BYTES = mmap.PAGESIZE


def read_pages(path: str, nbytes: int, buf: bytearray) -> bytes:
    """readinto() the first nbytes into buf; return one byte per page (the data we now hold).

    Keeping one byte per page (a C-level stepped slice) proves the bytes reached the buffer
    while adding little Python work to the copy being timed.
    """
    sampled = []
    with open(path, "rb", buffering=0) as f:
        left = nbytes
        while left > 0:
            n = f.readinto(memoryview(buf)[: min(len(buf), left)])
            if n == 0:
                break
            sampled.append(bytes(buf[0:n:PAGE_BYTES]))
            left -= n
    return b"".join(sampled)
