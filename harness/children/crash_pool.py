"""PR2's caveat: a concurrent.futures.ProcessPoolExecutor whose worker segfaults; report what broke.

Usage: python -m harness.children.crash_pool INNOCENT_S

One innocent task runs INNOCENT_S in one worker while the other worker segfaults; two more
innocent tasks wait in the queue. The report says how each future ended, whether the pool
still takes work, and how its workers exited.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from harness.children import emit
from harness.children.crash import crash, status


def innocent(seconds: float) -> str:
    time.sleep(seconds)
    return "ok"


def outcome(future) -> str:
    try:
        future.result()
        return "ok"
    except BrokenProcessPool:
        return "broken"


def main(innocent_s: float) -> None:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(innocent, [0.0, 0.0]))  # both workers are up
        workers = multiprocessing.active_children()
        innocents = [pool.submit(innocent, innocent_s)]  # runs in one worker while the other crashes
        crashing = pool.submit(crash, "segfault")
        innocents += [pool.submit(innocent, 0.0) for _ in range(2)]  # queued behind them
        wait(innocents + [crashing])
        try:
            pool.submit(innocent, 0.0).result()
            refuses_work = False
        except BrokenProcessPool:
            refuses_work = True
    for w in workers:
        w.join()
    emit({"crashing_task": outcome(crashing), "innocent": [outcome(f) for f in innocents],
          "refuses_work": refuses_work, "worker_exits": sorted(status(w.exitcode) for w in workers)})


if __name__ == "__main__":
    main(float(sys.argv[1]))
