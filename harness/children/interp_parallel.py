"""IN1's child: K interpreters run the same pure-Python work from K threads, against one interpreter alone.

Usage: python -m harness.children.interp_parallel K SHARE SHARES OPPOSITE_SHARES IDLE MAX_ROUNDS CORES SPEEDUP

All of it happens in this one process, never in pytest's. First, before any round:
- K interpreters are created, each timed from create() to the end of its first exec (a bare
  statement); then IDLE more, idle ones, with the process's resident memory (VmRSS) and its
  address space (VmSize) read before and after them: the growth per interpreter. The idle ones
  are closed again. A call into an interpreter (exec of a bare statement) is timed too:
  exec_call. And one interpreter writes a list into the sys module's namespace, which the main
  interpreter then looks for (writes_seen), beside a thread of the main interpreter doing the
  same (its opposite); and a thread of the main interpreter plays ping-pong with a thread
  running in another (interpreter_switch: both on one CPU, net of the pipe used alone);
- each working interpreter receives harness.workloads.spin and DRAIN as source, so that it
  runs the very loop the main interpreter runs, and runs it once to warm up.
The work is SHARES shares of spin(SHARE), handed out through a pipe holding one byte per share:
every thread of a world reads a byte and runs a share until the pipe is empty (DRAIN), so a
thread on a CPU slowed by a neighbour takes fewer shares instead of leaving the other CPUs idle
at the end, and each interpreter is entered once per world, not once per share (a call into an
interpreter costs far more on the free-threaded build: exec_call).
Rounds (harness.stats.sample_rounds, until both worlds' cores and the speedup are decided
against CORES and SPEEDUP, up to MAX_ROUNDS) run three worlds, the sequential one in the middle
and the other two swapping places from round to round:
- sequential: every share, in the first interpreter;
- interpreters: K parked threads (harness.parked), thread i draining the shares in interpreter
  i; cores = the process's CPU seconds (getrusage: every thread) / wall, speedup = the
  sequential wall / this wall, and side_by_side_cpu_cost = its CPU seconds / the sequential
  run's for the same work;
- the opposite world, on OPPOSITE_SHARES shares, by the build: with the GIL, K threads draining
  them in the main interpreter, sharing its one GIL; without it (free-threaded: threads run in
  parallel there anyway), the K interpreters' threads pinned to one CPU (sched_setaffinity). Its
  speedup is against the sequential run's time for as many shares (all shares are equal).
It reports every round, the creation and call times, the memory growth and which opposite it built.
"""
from __future__ import annotations

import gc
import inspect
import os
import statistics
import sys
import threading
import time

from harness import stats
from harness.children import emit
from harness.environment import gil_enabled
from harness.interpreters import load
from harness.measure import measure
from harness.parked import ParkedThreads
from harness.pingpong import volley
from harness.workloads import spin

DRAIN = '''
def drain(fd, share):
    import os
    while os.read(fd, 1):
        spin(share)
'''
SOURCE = inspect.getsource(spin) + DRAIN  # what every interpreter, and the main one, runs
EXEC_CALLS = 20  # calls timed for exec_call


def status_bytes(field: str = "VmRSS") -> int:
    """A size from /proc/self/status: the resident set (VmRSS) or the address space (VmSize)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


PROBE_WRITES = 100  # items written to a module's global, by another interpreter or by a thread


def writes_seen(interp) -> tuple[int, int]:
    """Items another interpreter wrote into a global of the sys module that the main interpreter then sees,
    and (the opposite world) the items a thread of the main interpreter wrote there. Every interpreter has
    its own modules (PEP 684), so the first predicts 0; a thread shares its interpreter's, the second all."""
    seen = []
    for write in (lambda: interp.exec(f"import sys; sys.unit_probe = list(range({PROBE_WRITES}))"),
                  lambda: _in_thread(lambda: setattr(sys, "unit_probe", list(range(PROBE_WRITES))))):
        write()
        seen.append(len(getattr(sys, "unit_probe", [])))
        if hasattr(sys, "unit_probe"):
            del sys.unit_probe
    return seen[0], seen[1]


def _in_thread(fn) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join()


def created(module):
    """A new interpreter and the seconds from create() to the end of its first exec."""
    t0 = time.perf_counter()
    interp = module.create()
    interp.exec("pass")
    return interp, time.perf_counter() - t0


def shares_pipe(count: int) -> int:
    """The read end of a pipe holding `count` bytes, its write end closed: `count` shares, then EOF."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"s" * count)
    os.close(write_fd)
    return read_fd


def threads_run(fn, k: int, count: int, pin_to: int | None = None):
    """k parked threads (pinned to CPU `pin_to` if given, before the clock), thread i calling fn(i, fd) on one
    pipe of `count` shares; the Usage of the whole set."""
    fd = shares_pipe(count)
    parked = ParkedThreads(fn, [(i, fd) for i in range(k)], name="in1")
    try:
        if pin_to is not None:
            for t in parked.threads:
                os.sched_setaffinity(t.native_id, {pin_to})
        return measure(parked.go)
    finally:
        parked.close()
        os.close(fd)


def close_all(interps: list) -> None:
    for interp in interps:
        interp.close()


def one_round(interps, main_drain, share: int, count: int, few: int, reverse: bool, pin_to: int | None) -> dict:
    """The three worlds once each, the sequential run in the middle so that it sits next to the interpreters
    whichever comes first; `reverse` swaps the first and the last."""
    k = len(interps)

    def in_interpreter(i, fd):
        interps[i].exec(f"drain({fd}, {share})")

    def run(world):
        if world == "sequential":
            return threads_run(in_interpreter, 1, count)
        if world == "interpreters":
            return threads_run(in_interpreter, k, count)
        if pin_to is not None:  # free-threaded: the opposite is the interpreters' threads on one CPU
            return threads_run(in_interpreter, k, few, pin_to)
        return threads_run(lambda i, fd: main_drain(fd, share), k, few)  # GIL: main-interpreter threads

    order = ("opposite", "sequential", "interpreters") if reverse else ("interpreters", "sequential", "opposite")
    used = {world: run(world) for world in order}
    sequential, parallel, opposite = used["sequential"], used["interpreters"], used["opposite"]
    return {"sequential_wall": sequential.wall,
            "parallel_wall": parallel.wall, "interpreter_cores": parallel.cores,
            "interpreter_speedup": sequential.wall / parallel.wall,
            "side_by_side_cpu_cost": parallel.cpu / sequential.cpu,
            "opposite_wall": opposite.wall, "opposite_cores": opposite.cores,
            "opposite_speedup": sequential.wall * few / count / opposite.wall}


def exec_call_seconds(interp) -> float:
    """The median time of one exec of a bare statement: entering and leaving an interpreter."""
    times = []
    for _ in range(EXEC_CALLS):
        t0 = time.perf_counter()
        interp.exec("pass")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


SWITCH_ROUND_TRIPS = 500  # per sample of the switch between interpreters
SWITCH_SAMPLES = 6


def interpreter_switch(interp) -> list[float]:
    """Per-switch seconds, net of the pipe, of a ping-pong between a thread of the main interpreter and a thread
    running in `interp` (an echo loop over two os.pipes), both pinned to one CPU, as harness.pingpong times
    threads and processes: (round trip - the same pipe written and read by one thread alone) / 2."""
    before = os.sched_getaffinity(0)
    to_echo, from_echo = os.pipe(), os.pipe()
    alone = os.pipe()
    os.sched_setaffinity(0, {min(before)})  # this thread; the partner thread, started below, inherits it
    try:
        code = (f"import os\nwhile (m := os.read({to_echo[0]}, 1)) != b's':\n"
                f"    os.write({from_echo[1]}, m)\n")
        partner = threading.Thread(target=interp.exec, args=(code,), name="interp-echo")
        partner.start()
        try:
            echo = (lambda: os.read(from_echo[0], 1), lambda m: os.write(to_echo[1], m))
            pipe = (lambda: os.read(alone[0], 1), lambda m: os.write(alone[1], m))
            volley(*echo, SWITCH_ROUND_TRIPS)  # warm up
            out = []
            for _ in range(SWITCH_SAMPLES):
                pingpong = volley(*echo, SWITCH_ROUND_TRIPS)
                channel = volley(*pipe, 2 * SWITCH_ROUND_TRIPS)
                out.append((pingpong - channel) / (2 * SWITCH_ROUND_TRIPS))
        finally:
            os.write(to_echo[1], b"s")
            partner.join(30)
    finally:
        os.sched_setaffinity(0, before)
        for fd in (*to_echo, *from_echo, *alone):
            os.close(fd)
    return out


def main(k: int, share: int, count: int, few: int, idle: int, max_rounds: int, cores: float,
         speedup: float) -> None:
    module = load()
    pin_to = None if gil_enabled() else min(os.sched_getaffinity(0))
    working = [created(module) for _ in range(k)]
    gc.collect()
    before = status_bytes("VmRSS"), status_bytes("VmSize")
    spare = [created(module) for _ in range(idle)]
    gc.collect()
    growth = (status_bytes("VmRSS") - before[0]) / idle
    reserved = (status_bytes("VmSize") - before[1]) / idle
    seen, seen_opposite = writes_seen(working[0][0])
    creation = [seconds for _, seconds in working + spare]
    close_all([i for i, _ in spare])
    del spare
    interps = [i for i, _ in working]
    del working
    exec_call = exec_call_seconds(interps[0])
    switch = interpreter_switch(interps[0])
    main_namespace = {"spin": spin}
    exec(SOURCE, main_namespace)
    for i in range(k):
        interps[i].exec(SOURCE)
    for warm_up in [lambda fd, i=i: interps[i].exec(f"drain({fd}, 1000)") for i in range(k)] + \
            [lambda fd: main_namespace["drain"](fd, 1000)]:
        fd = shares_pipe(2)
        warm_up(fd)
        os.close(fd)

    def done(rounds):
        col = {name: [r[name] for r in rounds] for name in rounds[0]}
        return (all(stats.decided(col[f"{w}_cores"], ">=", cores) for w in ("interpreter", "opposite"))
                and stats.decided(col["interpreter_speedup"], ">", speedup))

    turn = iter(range(max_rounds))
    rounds = stats.sample_rounds(
        lambda: one_round(interps, main_namespace["drain"], share, count, few, next(turn) % 2 == 1, pin_to),
        max_rounds=max_rounds, done=done)
    close_all(interps)
    interps.clear()  # their __del__ runs now, not during shutdown (where the backport's raises)
    gc.collect()
    emit({"module": module.__name__, "gil_enabled": gil_enabled(), "pinned_to": pin_to, "creation_s": creation,
          "exec_call_s": exec_call, "resident_growth_per_interpreter": growth,
          "reserved_growth_per_interpreter": reserved, "writes_seen": seen, "writes_seen_opposite": seen_opposite,
          "probe_writes": PROBE_WRITES, "switch_net_of_channel_s": switch, "rounds": rounds})


if __name__ == "__main__":
    main(*map(int, sys.argv[1:7]), float(sys.argv[7]), float(sys.argv[8]))
