"""A stand-in for a slow device: per request, sleep, then write bytes into the channel it was given.

Usage: ``python -m harness.children.slow_device FD``. Each stdin line is ``DELAY_S NBYTES ACK``:
the child sleeps DELAY_S, writes NBYTES of a fixed pattern (harness.devices.pattern) into FD,
and, when ACK is 1, prints ``done`` once its last write has returned (every byte is then in
the kernel: the reader has not read them). EOF on stdin ends it.
"""
from __future__ import annotations

import os
import sys
import time


def pattern(nbytes: int) -> bytes:
    return (bytes(range(256)) * (nbytes // 256 + 1))[:nbytes]


def main(fd: int) -> None:
    for line in sys.stdin:
        delay, nbytes, ack = line.split()
        time.sleep(float(delay))
        view = memoryview(pattern(int(nbytes)))
        while view:
            view = view[os.write(fd, view):]
        if ack == "1":
            print("done", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
