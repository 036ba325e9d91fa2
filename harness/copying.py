"""Reading a file into a user buffer: the kernel-to-user copy that IO1 and IO3 both time."""
from __future__ import annotations

import mmap

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
