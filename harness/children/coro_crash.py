"""CO8's host: one coroutine crashes natively while another coroutine of the same loop keeps a heartbeat.

Usage: python -m harness.children.coro_crash KIND CRASH_AFTER_S HEARTBEAT_S HEARTBEATS

KIND is a harness.children.crash kind ("segfault": ctypes.string_at(0); "abort": os.abort()).
One asyncio loop runs two tasks: a heartbeat that writes BEAT per beat (os.write: no buffer a
crash could lose) and awaits HEARTBEAT_S between beats, HEARTBEATS beats; and a victim that
awaits CRASH_AFTER_S, writes CRASH and calls crash(KIND). The main thread reports (emit) only
if the loop, and so the process, outlives the crash.
"""
from __future__ import annotations

import asyncio
import os
import sys

from harness.children import emit
from harness.children.crash import BEAT, CRASH, crash


async def heartbeat(beats: int, beat_s: float) -> int:
    for _ in range(beats):
        os.write(1, f"{BEAT}\n".encode())
        await asyncio.sleep(beat_s)
    return beats


async def victim(kind: str, crash_after_s: float) -> None:
    await asyncio.sleep(crash_after_s)
    os.write(1, f"{CRASH}\n".encode())
    crash(kind)


async def both(kind: str, crash_after_s: float, beat_s: float, beats: int) -> list:
    return await asyncio.gather(heartbeat(beats, beat_s), victim(kind, crash_after_s), return_exceptions=True)


def main(kind: str, crash_after_s: float, beat_s: float, beats: int) -> None:
    results = asyncio.run(both(kind, crash_after_s, beat_s, beats))
    emit({"results": [repr(r)[:200] for r in results]})


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
