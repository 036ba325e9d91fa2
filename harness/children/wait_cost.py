"""IO7's poll cost per watched descriptor, measured in a fresh single-threaded process.

Usage: ``python -m harness.children.wait_cost KIND N BASELINE_N CALLS ROUNDS``. Emits
{"threads": ..., "rounds": [[cost_s, base_cost_s], ...]}: batched waits on an N-descriptor
set and a BASELINE_N set, paired per round, as in pytest's process but with no other thread
sharing the descriptor table.
"""
from __future__ import annotations

import contextlib
import os
import resource
import sys

from harness.children import emit
from harness.waiters import descriptor_set, paired_batches


def main(kind: str, n: int, baseline_n: int, calls: int, rounds: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = n + baseline_n + 64
    if needed > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    with contextlib.ExitStack() as stack:
        base_fds = stack.enter_context(descriptor_set(baseline_n))
        fds = stack.enter_context(descriptor_set(n))
        one_round = paired_batches(kind, fds, base_fds, calls, stack)
        results = [one_round()[:2] for _ in range(rounds)]
    emit({"threads": len(os.listdir("/proc/self/task")), "rounds": results})


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:6]))
