"""TH2: when one thread crashes, the whole process dies.

What is measured, always in a fresh interpreter (harness.children.crash_threads) so that no
crash can reach pytest: a process with a heartbeat thread and a victim thread. The victim
crashes natively (SIGSEGV through ctypes, or os.abort) or raises an unhandled Python
exception. The heartbeat thread writes a line per beat with os.write (no buffer to lose), so
the parent counts how much of its planned work it finished; the main thread prints a result
only if it outlives both threads.

Why this method: the claim predicts that a native crash ends every thread at once: the
process dies by the crash's signal, the heartbeat stops part-way and the main thread never
reports. Were threads contained as processes are (PR2), the process would exit 0 with every
beat done. The control, and the caveat: an unhandled Python exception, which ends only its
own thread (threading.excepthook reports it), while the process goes on and exits 0.

The opposite world, for the native crashes (harness.evidence.Opposite), in runs interleaved
with the claim's (one untimed before each of the first OPPOSITE_ROUNDS rounds: one in the quick
run, since one surviving host already lands on the other side): the same crash made by a child
process of the host instead of by one of its threads. The host is PR2's supervisor
(harness.children.crash_supervisor, one round): a fresh interpreter forks a victim that crashes
the same way (and a heartbeat sibling), then reports. The claim's mechanism, a fatal signal
delivered to the process that crashed, then ends only the child, so the host survives and
reports: both checks count every such run.

How it is decided: for native crashes, a round in which the process survived or the main
thread reported is a counterexample (support), and the opposite world's runs are counted by
the same checks: each decides only when they land on the other side of 0. For the Python
exception, every check is a caveat: a process that died there would not refute the claim (it
would agree with it), it would only take the caveat away. How many beats the heartbeat
managed is a figure.

Known traps: the children run with -X faulthandler, which prints a traceback and re-raises
the signal, so the exit status is still the signal's; that stderr is captured, not shown.
"""
from __future__ import annotations

import pytest

from harness.crashhosts import host_rounds
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux

ROUNDS = pick(quick=3, full=5)  # one interpreter per round: a native crash ends it
CHILD_TIMEOUT_S = 30.0
CRASH_AFTER_S = 0.01  # the victim runs this long before crashing
HEARTBEAT_S = 0.002
HEARTBEATS = 25  # the heartbeat thread's planned work: several times CRASH_AFTER_S
THREAD_CRASHES = {"segfault": "SIGSEGV", "abort": "SIGABRT"}
# Runs of the opposite world. It decides counts only (one surviving host, one report), which a single
# run already shows: the quick run spends one.
OPPOSITE_ROUNDS = pick(quick=1, full=ROUNDS)


def run_rounds(benchmark, kind: str, opposite: list | None = None) -> list[dict]:
    """ROUNDS child runs with a crashing (or raising) thread; what each left behind (harness.crashhosts).

    With `opposite` (a list), the opposite world runs untimed before each of the first OPPOSITE_ROUNDS
    rounds and its outcome is appended there (host_with_crashing_child).
    """
    seen = host_rounds(benchmark, "harness.children.crash_threads", kind, rounds=ROUNDS, crash_after_s=CRASH_AFTER_S,
                       beat_s=HEARTBEAT_S, beats=HEARTBEATS, timeout=CHILD_TIMEOUT_S, opposite=opposite,
                       opposite_rounds=OPPOSITE_ROUNDS)
    return [s | {"hook_saw": s["result"]["hook_saw"] if s["main_reported"] else []} for s in seen]


@pytest.mark.claim("TH2")
@needs_linux
@pytest.mark.parametrize("crash", sorted(THREAD_CRASHES))
def test_native_crash_in_a_thread_kills_the_whole_process(benchmark, evidence, crash):
    benchmark.group = "TH2 a thread crashes beside a heartbeat thread (subprocess run)"
    hosts: list[dict] = []
    seen = run_rounds(benchmark, crash, opposite=hosts)

    evidence.condition(crash=crash, crash_after_s=CRASH_AFTER_S, rounds=ROUNDS)
    evidence.figure("process_exit_status", ",".join(sorted({s["status"] for s in seen})))
    evidence.figure("heartbeats_done", unit=f"of {HEARTBEATS}", samples=[s["beats"] for s in seen])
    evidence.figure("opposite_host_exit_status", ",".join(sorted({h["status"] for h in hosts})))
    children = ",".join(sorted({h["child_status"] for h in hosts}))
    evidence.figure("opposite_crashing_child_exit_status", children)
    if children != THREAD_CRASHES[crash]:
        evidence.not_measured(f"the opposite world's child ended with {children}, not {THREAD_CRASHES[crash]}: "
                              "it did not crash as planned")
    crashing_child = "the same crash made by a child process of the host instead of a thread, interleaved runs"
    # A crash that kills the process predicts a fatal signal and no report in every round;
    # contained threads predict exit 0 and a report. One surviving process is a counterexample.
    evidence.support("rounds_process_survived", value=sum(not s["killed"] for s in seen), op="==", threshold=0,
                     unit="rounds",
                     opposite=Opposite(crashing_child, value=sum(not h["killed"] for h in hosts)),
                     why="a fatal signal is delivered to the process, whichever thread caused it")
    evidence.support("rounds_main_thread_reported", value=sum(s["main_reported"] for s in seen), op="==", threshold=0,
                     unit="rounds",
                     opposite=Opposite(crashing_child, value=sum(h["main_reported"] for h in hosts)),
                     why="the main thread died with the crashing one")
    evidence.settle(benchmark)


@pytest.mark.claim("TH2")
@needs_linux
def test_python_exception_in_a_thread_ends_only_that_thread(benchmark, evidence):
    benchmark.group = "TH2 a thread raises beside a heartbeat thread (subprocess run)"
    seen = run_rounds(benchmark, "python_exception")

    evidence.condition(crash="python_exception", rounds=ROUNDS)
    evidence.figure("process_exit_status", ",".join(sorted({s["status"] for s in seen})))
    evidence.figure("heartbeats_done", unit=f"of {HEARTBEATS}", samples=[s["beats"] for s in seen])
    evidence.figure("excepthook_saw", ",".join(sorted({name for s in seen for name in s["hook_saw"]})) or "nothing")
    # The caveat: an exception, unlike a native crash, ends one thread only. Every check is a
    # caveat, so a process that died here would take the caveat away, never refute the claim.
    evidence.caveat("rounds_process_failed", value=sum(s["status"] != "exit 0" for s in seen), op="==", threshold=0,
                    unit="rounds",
                    why="an unhandled Python exception ends only its own thread (threading.excepthook reports it)")
    evidence.caveat("rounds_main_thread_silent", value=sum(not s["main_reported"] for s in seen), op="==",
                    threshold=0, unit="rounds",
                    why="the main thread joined both threads and printed its result")
    evidence.caveat("rounds_without_beats_after_exception", value=sum(s["beats_after_crash"] == 0 for s in seen),
                    op="==", threshold=0,
                    unit="rounds", why="the other thread went on working after the exception")
    evidence.settle(benchmark)
