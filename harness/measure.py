"""Wall-clock and CPU accounting for one block of code.

Verdicts in this suite come from ratios and CPU accounting measured in the same run. CPU
time is the process's user + system time (all its threads, from getrusage, which counts in
microseconds where os.times counts in 10 ms clock ticks), so "cores" = CPU seconds / wall
seconds reads directly as "how many cores were busy".
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    wall: float
    user: float
    system: float

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def cores(self) -> float:
        """Average number of busy cores over the block (CPU time / wall time)."""
        return self.cpu / self.wall if self.wall > 0 else 0.0


class Meter:
    """``with Meter() as m: ...`` then m.usage: wall and this process's CPU time for the block.

    With children=True the CPU time of children reaped inside the block is added.
    """

    def __init__(self, children: bool = False):
        self.children = children
        self.usage: Usage | None = None

    def __enter__(self) -> Meter:
        self._t0 = self._cpu()
        self._w0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        w1 = time.perf_counter()
        user, system = (b - a for a, b in zip(self._t0, self._cpu()))
        self.usage = Usage(w1 - self._w0, user, system)

    def _cpu(self) -> tuple[float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        if not self.children:
            return me.ru_utime, me.ru_stime
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def measure(fn, *args, children: bool = False, **kwargs) -> Usage:
    with Meter(children=children) as m:
        fn(*args, **kwargs)
    return m.usage
