"""TH2's child: a heartbeat thread beside a thread that crashes natively or raises.

Usage: python -m harness.children.crash_threads KIND CRASH_AFTER_S HEARTBEAT_S HEARTBEATS

KIND is a harness.children.crash kind or "python_exception". The heartbeat thread writes
BEAT per beat with os.write (no buffer a crash could lose), the victim writes CRASH just
before it crashes, and the main thread reports (emit) only if it outlives both threads.
"""
from __future__ import annotations

import os
import sys
import threading
import time

from harness.children import emit
from harness.children.crash import BEAT, CRASH, crash


def main(kind: str, crash_after_s: float, beat_s: float, beats: int) -> None:
    hook_saw = []
    threading.excepthook = lambda args: hook_saw.append(args.exc_type.__name__)

    def heartbeat():
        for _ in range(beats):
            os.write(1, f"{BEAT}\n".encode())
            time.sleep(beat_s)

    def victim():
        time.sleep(crash_after_s)
        os.write(1, f"{CRASH}\n".encode())
        if kind == "python_exception":
            raise RuntimeError("unhandled in a thread")
        crash(kind)

    threads = [threading.Thread(target=heartbeat), threading.Thread(target=victim)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit({"hook_saw": hook_saw})


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
