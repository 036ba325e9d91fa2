"""CO5's probe: start N threads or N asyncio tasks, wait until all are blocked, report memory.

Usage: python -m harness.children.memory_probe thread|coroutine N BUDGET_S

Units are started up to N, or for as long as BUDGET_S allows. Memory is read just before the
first unit starts (after a warm-up unit, so first-use costs stay out) and once every unit is
blocked: resident (RSS, and USS from smaps_rollup via psutil), virtual (VMS), the count of
glibc malloc arenas (malloc_info's <heap> entries; None off glibc) and of memory mappings.
The child then exits at once: tearing down many tasks or thousands of threads is not what is
measured. Run it with MALLOC_ARENA_MAX=1 in its environment to see threads without arenas.
"""
from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import resource
import sys
import threading
import time

import psutil

from harness.children import emit

ME = psutil.Process()


def malloc_arenas() -> int | None:
    """glibc malloc arenas in use (one <heap> per arena in malloc_info); None off glibc."""
    try:
        libc = ctypes.CDLL(None)
        libc.open_memstream.restype = ctypes.c_void_p
        buf, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = ctypes.c_void_p(libc.open_memstream(ctypes.byref(buf), ctypes.byref(size)))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        xml = ctypes.string_at(buf, size.value).decode()
        libc.free(buf)
        return xml.count("<heap nr=")
    except (AttributeError, OSError):
        return None


def snapshot() -> dict:
    gc.collect()
    full = ME.memory_full_info()
    uss = getattr(full, "uss", full.rss)
    with open("/proc/self/maps") as maps:
        mappings = sum(1 for _ in maps)
    return {"rss": full.rss, "uss": uss, "resident": max(full.rss, uss), "vms": full.vms,
            "arenas": malloc_arenas(), "mappings": mappings}


def start_threads(n: int, budget_s: float):
    release, ready = threading.Event(), threading.Semaphore(0)

    def body():
        ready.release()
        release.wait()

    warm = threading.Thread(target=body)  # first-use costs out of the baseline
    warm.start()
    ready.acquire()
    release.set()
    warm.join()
    release.clear()
    base, error, started = snapshot(), "", []
    t0 = time.perf_counter()
    try:
        while len(started) < n and time.perf_counter() - t0 < budget_s:
            t = threading.Thread(target=body, daemon=True)
            t.start()
            started.append(t)
    except RuntimeError as exc:  # "can't start new thread": a ceiling reached
        error = str(exc)
    for _ in started:
        ready.acquire()  # every thread is inside body, blocked on the Event
    elapsed = time.perf_counter() - t0
    return base, snapshot(), len(started), elapsed, error


async def start_tasks(n: int, budget_s: float):
    release, running = asyncio.Event(), [0]

    async def body():
        running[0] += 1
        await release.wait()

    warm = [asyncio.create_task(body()) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*warm)
    release.clear()
    running[0] = 0
    base, started = snapshot(), []
    t0 = time.perf_counter()
    while len(started) < n and time.perf_counter() - t0 < budget_s:
        started.append(asyncio.create_task(body()))
    await asyncio.sleep(0)  # one loop pass runs every new task to its first await
    elapsed = time.perf_counter() - t0
    if running[0] != len(started):
        raise RuntimeError(f"{running[0]} of {len(started)} tasks reached their first await")
    # Snapshot here, while `started` holds the tasks: once this coroutine returns, the
    # pending tasks form an unreachable cycle that gc.collect() would free.
    return base, snapshot(), len(started), elapsed, ""


def main(unit: str, n: int, budget_s: float) -> None:
    if unit == "thread":
        base, after, started, seconds, error = start_threads(n, budget_s)
    else:
        base, after, started, seconds, error = asyncio.new_event_loop().run_until_complete(start_tasks(n, budget_s))
    emit({"started": started, "seconds": seconds, "error": error, "base": base, "after": after,
          "stack_rlimit": resource.getrlimit(resource.RLIMIT_STACK)[0],
          "stack_size": threading.stack_size(), "online_cpus": os.cpu_count()})
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
