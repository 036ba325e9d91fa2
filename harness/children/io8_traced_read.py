"""IO8's traced child: COUNT messages of SIZE bytes read one way, between two markers in the trace.

Usage: ``python -m harness.children.io8_traced_read KIND COUNT SIZE`` under strace, where KIND
is an event loop (asyncio, uvloop: a stream reader, each message sent only after the read is
waiting) or io_uring (the completion-based reference: the buffer is handed to the kernel
before the data exists). The markers are write(-1, ...) calls, which fail with EBADF and cost
nothing: the parent counts only the syscalls between IO8-BEGIN and IO8-END. Message 0 warms
up the transport and is read before the first marker.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys

from harness import aio
from harness.children import emit
from harness.uring import Uring

BEGIN, END = b"IO8-BEGIN", b"IO8-END"


def mark(text: bytes) -> None:
    try:
        os.write(-1, text)
    except OSError:
        pass


def with_io_uring(sender, receiver, count: int, size: int) -> None:
    buf = bytearray(size)
    with Uring(4) as ring:
        for i in range(count + 1):
            if i == 1:
                mark(BEGIN)
            got = ring.recv(receiver, buf, then=lambda: sender.send(b"m" * size))
            if got != size:
                raise RuntimeError(f"io_uring completed {got} bytes of {size}")
        mark(END)


async def with_streams(sender, receiver, count: int, size: int) -> None:
    reader, writer = await asyncio.open_connection(sock=receiver)
    loop = asyncio.get_running_loop()
    for i in range(count + 1):
        if i == 1:
            mark(BEGIN)
        loop.call_soon(sender.send, b"m" * size)  # sent after the read waits
        await reader.readexactly(size)
    mark(END)
    writer.close()
    await writer.wait_closed()


def main(kind: str, count: int, size: int) -> None:
    sender, receiver = socket.socketpair()
    try:
        if kind == "io_uring":
            with_io_uring(sender, receiver, count, size)
        else:
            loop = aio.new_loop(kind)
            try:
                loop.run_until_complete(with_streams(sender, receiver, count, size))
            finally:
                loop.close()
    finally:
        sender.close()
        receiver.close()
    emit({"kind": kind, "messages": count})


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
