"""CO5's stack-size child: the same threads started at each given stack size, one batch after another.

Usage: python -m harness.children.two_stacks N BUDGET_S SIZE [SIZE ...]   (a SIZE of 0: the default)

For each SIZE, threading.stack_size(SIZE), then N idle threads (memory_probe.start_threads), and
the memory figures before and after them. Emits {str(SIZE): {...}} as the child's result.
"""
from __future__ import annotations

import os
import resource
import sys
import threading

from harness.children import emit
from harness.children.memory_probe import start_threads


def main(n: int, budget_s: float, sizes: list[int]) -> None:
    runs = {}
    for size in sizes:
        threading.stack_size(size)
        base, after, started, seconds, error = start_threads(n, budget_s)
        runs[str(size)] = {"started": started, "seconds": seconds, "error": error, "base": base, "after": after,
                           "stack_rlimit": resource.getrlimit(resource.RLIMIT_STACK)[0],
                           "stack_size": threading.stack_size(), "online_cpus": os.cpu_count()}
    emit(runs)
    os._exit(0)  # the parked threads are never joined


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), [int(s) for s in sys.argv[3:]])
