"""IN1: interpreters in one process run CPU-bound Python in parallel, each with its own GIL (PEP 684).

What is measured, always in a fresh child process (harness.children.interp_parallel), never
in pytest's: k interpreters made with PEP 734's API (the stdlib's concurrent.interpreters from
3.14, the interpreters-pep-734 backport before), each given TH4's pure-Python loop
(harness.workloads.spin) as source. The work is k * SHARES_PER_INTERPRETER equal shares of
spin(SHARE), handed out one by one through a pipe (a byte per share), so that each interpreter
is entered once per run, not once per share. Every round runs it one share after another in
one interpreter (sequential), then from k threads, thread i in interpreter i; a quarter of it
(OPPOSITE_SHARES_PER_INTERPRETER shares each) runs in the opposite world. The sequential run
sits in the middle of each round, next to the interpreters whichever comes first; the other two
swap places from round to round. Figures per round:
- interpreter cores = the child's CPU seconds (getrusage: all its threads) / wall while the k
  interpreters run;
- speedup = sequential wall / interpreters' wall of the same round;
- side_by_side_cpu_cost = the interpreters' CPU seconds / the sequential run's, for the same
  work: recorded (as in PR4) to explain a speedup short of min(k, CPUs), since on a virtual
  machine a vCPU may do the same work more slowly while its sibling is busy too.
Before the rounds the child times each interpreter from create() to the end of its first exec
(creation_per_interpreter) and one call into it (exec_call: exec of a bare statement), and
reads its resident memory (VmRSS) and address space (VmSize) before and after creating
IDLE_INTERPRETERS more, idle ones (resident_growth_per_interpreter,
reserved_growth_per_interpreter), and counts the writes one interpreter made to a global of
the sys module that the main interpreter then sees, against a thread's writes to the same
global (interpreter_writes_seen_by_main and its _opposite), and times a pipe ping-pong between
a thread of the main interpreter and one running in another, on one CPU, net of the pipe used
alone (interpreter_switch_net_of_channel): figures for comparing interpreters
with threads and processes, deciding nothing.

How it is decided (harness.stats: the interval of the median over per-round samples, rounds
taken until every interval clears its threshold, up to MAX_ROUNDS):
- interpreter cores: the claim predicts min(k, CPUs), its negation (interpreters that share
  one lock and take turns) one core; the threshold sits halfway, as in PR4;
- speedup: interpreters that take turns never beat the sequential run (<= 1x), parallel ones
  finish sooner: a ratio against 1 (CHEAPER_THAN).
The opposite world of interpreter cores, in the same rounds, is chosen by the child's build:
- with the GIL: k threads running the same loop on the same kind of shares in the main
  interpreter, sharing its one GIL, so they take turns (TH4's world);
- free-threaded (no GIL, threads run in parallel anyway): the k interpreters' threads pinned
  to one CPU (sched_setaffinity, before the clock), where they can only take turns.
Either predicts one core and is judged by the same threshold; the check decides only when it
lands on the other side. The speedup has no opposite world here: both opposites predict about
1x, on the threshold itself, so no interval of theirs could land below it; their speedup (the
sequential run's time for as many shares over theirs) is a figure, opposite_speedup. There is
no room control (PR4's idle CPU from /proc/stat): its 10 ms ticks are too coarse for rounds
this short. None is needed for the cores check: where other jobs leave no CPU free, both
worlds read one core, the check is not discriminating, and the part reads not measured here.

At full scale the test is a scaling curve (marker scaling, `make scaling`): k = 2, 4, ... up to
the CPUs and one oversubscribed point (harness.scale.parallel_counts), each a part with the same
checks; reporting/scaling.py draws it beside TH4's threads and processes.

Known traps: the PEP 734 backport crashed on import on CPython 3.12.1 and its pool executor
hung on 3.13.0, so a probe child must create and run an interpreter first
(harness.interpreters.refusal), or the part is not measured here, with the reason; before 3.12
there is no per-interpreter GIL at all. On one CPU nothing can scale (needs_two_cpus). A call
into an interpreter costs far more on the free-threaded build (exec_call), hence one call per
thread per run. The interpreters are created and warmed up, and the threads parked, before any
clock.
"""
from __future__ import annotations

import pytest

from harness import interpreters
from harness.environment import cpus_available
from harness.evidence import Opposite
from harness.scale import parallel_counts, pick
from harness.skips import needs_two_cpus
from harness.subproc import run_module
from harness.thresholds import CHEAPER_THAN
from harness.timing import replay

# At full scale a scaling curve: 2, 4, ... up to the CPUs, and one oversubscribed point (make scaling).
INTERPRETERS = pick(quick=(2,), full=parallel_counts(cpus_available()))
# spin() iterations per share: a few milliseconds. The interpreters' run (SHARES_PER_INTERPRETER shares each)
# then lasts long enough that a CPU waking late from idle (milliseconds on a virtual machine) costs it
# little of its cores.
SHARE = pick(quick=20_000, full=50_000)
# Many equal shares per interpreter, handed out one by one, so that an interpreter slowed by a busy
# neighbour takes fewer instead of leaving the other CPUs idle at the end (idle CPUs would read as
# interpreters that failed to run in parallel).
SHARES_PER_INTERPRETER = 8
# The opposite world runs this many shares per interpreter: a quarter of the work. Its prediction (one
# core) does not depend on how much work it is given.
OPPOSITE_SHARES_PER_INTERPRETER = 2
IDLE_INTERPRETERS = 4  # created only to read the resident memory each one adds
MAX_ROUNDS = pick(quick=20, full=30)  # the bound on sampling while an interval straddles its threshold
CHILD_TIMEOUT_S = 120.0


def cores_threshold(ideal: int) -> float:
    """Interpreters that take turns keep 1 core busy (the negation), parallel ones min(k, CPUs) (the claim):
    halfway (harness.thresholds "between", halfway for a count of cores)."""
    return (1 + ideal) / 2


# Interpreters that take turns finish no sooner than one interpreter doing all the work (<= 1x, the
# negation); parallel ones sooner (> 1x, the claim), by up to min(k, CPUs)x less what busy vCPUs cost each
# other. Rule: harness.thresholds.CHEAPER_THAN ("sooner": a ratio against 1).
MIN_SPEEDUP = CHEAPER_THAN


def measure_interpreters(k: int, cores: float) -> dict:
    """The child's rounds (as columns) and its figures: creation times, memory, which opposite it built."""
    outcome = run_module("harness.children.interp_parallel", k, SHARE, k * SHARES_PER_INTERPRETER,
                         k * OPPOSITE_SHARES_PER_INTERPRETER, IDLE_INTERPRETERS, MAX_ROUNDS, cores, MIN_SPEEDUP,
                         timeout=CHILD_TIMEOUT_S)
    out = outcome.result()
    rounds = out.pop("rounds")
    out["samples"] = {name: [r[name] for r in rounds] for name in rounds[0]}
    return out


def opposite_label(k: int, gil: bool) -> str:
    if gil:
        return f"the same shares run by {k} threads in the main interpreter, sharing its one GIL, same rounds"
    return (f"free-threaded build: the same {k} interpreters' threads pinned to one CPU (sched_setaffinity), "
            "same rounds")


@pytest.mark.claim("IN1")
@pytest.mark.scaling
@needs_two_cpus
@pytest.mark.parametrize("k", INTERPRETERS, ids=lambda k: f"{k}-interpreters")
def test_interpreters_run_cpu_bound_python_in_parallel(benchmark, evidence, k):
    refusal = interpreters.refusal()
    if refusal:
        evidence.not_measured(refusal)
    ideal = min(k, cpus_available())
    cores = cores_threshold(ideal)
    out = measure_interpreters(k, cores)
    samples = out["samples"]
    evidence.condition(interpreters=k, module=out["module"], interpreter_gil=interpreters.info().get("gil"),
                       child_gil_enabled=out["gil_enabled"], work_units=SHARE * k * SHARES_PER_INTERPRETER,
                       ideal_speedup=ideal)
    benchmark.group = "IN1 pure-Python CPU work over interpreters in one process (subprocess run)"
    replay(benchmark, samples["parallel_wall"])
    for name in ("sequential_wall", "parallel_wall", "opposite_wall"):
        evidence.figure(name, unit="s", samples=samples[name])
    for name in ("opposite_speedup", "side_by_side_cpu_cost"):
        evidence.figure(name, unit="x", samples=samples[name])
    evidence.figure("creation_per_interpreter", unit="s", samples=out["creation_s"])
    evidence.figure("exec_call", out["exec_call_s"], "s")
    evidence.figure("resident_growth_per_interpreter", out["resident_growth_per_interpreter"], "bytes")
    evidence.figure("reserved_growth_per_interpreter", out["reserved_growth_per_interpreter"], "bytes")
    evidence.figure("interpreter_switch_net_of_channel", unit="s", samples=out["switch_net_of_channel_s"])
    # Whether memory is shared by default (a figure for the units table): another interpreter's writes to a
    # module global that the main interpreter sees, beside a thread's writes to the same global.
    evidence.figure("interpreter_writes_made", out["probe_writes"], "writes")
    evidence.figure("interpreter_writes_seen_by_main", out["writes_seen"], "writes")
    evidence.figure("interpreter_writes_seen_by_main_opposite", out["writes_seen_opposite"], "writes")
    evidence.support("interpreter_cores", op=">=", threshold=cores, unit="cores",
                     samples=samples["interpreter_cores"],
                     why=f"{k} interpreters, a GIL each, keep that many CPUs busy at once, not one after another",
                     opposite=Opposite(opposite_label(k, out["gil_enabled"]), samples=samples["opposite_cores"]))
    evidence.support("speedup", op=">", threshold=MIN_SPEEDUP, unit="x", samples=samples["interpreter_speedup"],
                     why="the same work finishes sooner than in one interpreter, in the same rounds")
    evidence.settle(benchmark)
