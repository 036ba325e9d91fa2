"""CPU accounting of one piece of work run in a fresh thread: precise CPU, its user/system split, run-queue wait.

Why this exists: IO1 and IO3 both need the CPU a kernel copy costs, and both hit the same
trap. Linux splits a thread's precise CPU time into user and system by the tick samples it
took *since the thread began*, so in pytest's long-lived main thread a short kernel-heavy
window reads as user time. Work is therefore run in a new thread and accounted there alone.
The split is still tick-sampled (4 ms ticks), so callers pool it over rounds
(``system_share``) and apply it to the precise total (``time.thread_time``).
"""
from __future__ import annotations

import resource
import threading
import time
from dataclasses import dataclass

from harness.probes import schedstat


@dataclass(frozen=True)
class ThreadUsage:
    wall: float
    cpu: float  # precise (time.thread_time)
    user: float  # tick-sampled split of the same time (getrusage RUSAGE_THREAD)
    system: float
    runq: float  # time spent runnable but waiting for a CPU (other agents' load)
    span: float  # wall time around the run-queue readings (a little wider than `wall`)

    @property
    def cpu_share(self) -> float:
        """CPU time / the time the thread was not waiting for a CPU: ≈ 1 means it never slept."""
        ready = self.span - self.runq
        return self.cpu / ready if ready > 0 else 0.0


def in_fresh_thread(fn, *args) -> ThreadUsage:
    """Run fn(*args) in a new thread and account that thread alone."""
    out: dict = {}

    def body():
        try:
            # nested readings: the span encloses the run-queue window, which encloses the CPU one
            s0 = time.perf_counter()
            q0, r0 = schedstat()[1], resource.getrusage(resource.RUSAGE_THREAD)
            c0, w0 = time.thread_time(), time.perf_counter()
            fn(*args)
            w1, c1 = time.perf_counter(), time.thread_time()
            r1, q1 = resource.getrusage(resource.RUSAGE_THREAD), schedstat()[1]
            s1 = time.perf_counter()
            out["usage"] = ThreadUsage(
                w1 - w0, c1 - c0, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, q1 - q0, s1 - s0
            )
        except BaseException as exc:  # re-raised in the caller
            out["error"] = exc

    t = threading.Thread(target=body, name="measured")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["usage"]


def system_share(usages: list[ThreadUsage]) -> float:
    """System time's share of the tick-sampled CPU time, over all the samples together."""
    total = sum(u.user + u.system for u in usages)
    return sum(u.system for u in usages) / total if total > 0 else 0.0
