"""CO8: a native crash in one coroutine takes down every coroutine of its loop, and the process.

What is measured, always in fresh host processes (harness.children.coro_crash), so that no
crash can reach pytest: one asyncio loop running a heartbeat task (a line per beat, written
with os.write: no buffer to lose) beside a task that crashes natively with the crash TH2, PR2
and IN2 use (harness.children.crash: SIGSEGV through ctypes.string_at(0), or os.abort), after
writing CRASH. The host's main thread reports only if its loop outlives the crash.

Why this method: coroutines are scheduled by one loop on one thread of one process, so a fatal
signal that one of them raises is the process's: the claim predicts the host dead by that
signal in every round, the heartbeat stopped part-way and no report. Were coroutines contained
as processes are (PR2), the loop would go on, every beat done, and report.

The opposite world (harness.evidence.Opposite), in runs interleaved with the claim's (one
untimed before each of the first OPPOSITE_ROUNDS rounds, as in TH2 and IN2): the same crash
made by a child process of the host instead of a task of its loop (PR2's supervisor,
harness.children.crash_supervisor, one round). The signal then ends only the child, so the
host survives.

How it is decided: a round in which the host survived, or reported, is a counterexample
(support; rule "exact": the claim predicts 0), and the opposite world's runs are counted by the
same checks: each decides only when they land on the other side of 0. The control: the victim
task reached its crash (its CRASH line) in every round.

Known traps: the children run with -X faulthandler, which prints a traceback and re-raises the
signal, so the exit status is still the signal's.
"""
from __future__ import annotations

import pytest

from harness.crashhosts import host_rounds
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux

ROUNDS = pick(quick=3, full=5)  # one host per round: a native crash ends it
CHILD_TIMEOUT_S = 30.0
CRASH_AFTER_S = 0.01  # the victim task runs this long before crashing
HEARTBEAT_S = 0.002
HEARTBEATS = 25  # the heartbeat task's planned work: several times CRASH_AFTER_S
SIGNALS = {"segfault": "SIGSEGV", "abort": "SIGABRT"}
# The quick run makes the segfault only; abort is the same mechanism (a fatal signal to the process).
CRASHES = pick(quick={"segfault": SIGNALS["segfault"]}, full=SIGNALS)
# Runs of the opposite world. It decides counts only (one surviving host, one report), which a single run
# already shows: the quick run spends one.
OPPOSITE_ROUNDS = pick(quick=1, full=ROUNDS)


def run_rounds(benchmark, kind: str, opposite: list) -> list[dict]:
    """ROUNDS hosts whose victim task crashes; what each left behind (harness.crashhosts). The opposite world runs
    untimed before each of the first OPPOSITE_ROUNDS rounds, appended to `opposite`."""
    return host_rounds(benchmark, "harness.children.coro_crash", kind, rounds=ROUNDS, crash_after_s=CRASH_AFTER_S,
                       beat_s=HEARTBEAT_S, beats=HEARTBEATS, timeout=CHILD_TIMEOUT_S, opposite=opposite,
                       opposite_rounds=OPPOSITE_ROUNDS)


@pytest.mark.claim("CO8")
@needs_linux
@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_native_crash_in_a_coroutine_kills_its_loop_and_process(benchmark, evidence, crash):
    benchmark.group = "CO8 a task crashes beside a heartbeat task on one loop (subprocess run)"
    hosts: list[dict] = []
    seen = run_rounds(benchmark, crash, hosts)

    evidence.condition(crash=crash, crash_after_s=CRASH_AFTER_S, rounds=ROUNDS, loop="asyncio")
    evidence.figure("host_exit_status", ",".join(sorted({s["status"] for s in seen})))
    evidence.figure("heartbeats_done", unit=f"of {HEARTBEATS}", samples=[s["beats"] for s in seen])
    evidence.figure("heartbeats_after_crash", unit="beats", samples=[s["beats_after_crash"] for s in seen])
    evidence.figure("opposite_host_exit_status", ",".join(sorted({h["status"] for h in hosts})))
    children = ",".join(sorted({h["child_status"] for h in hosts}))
    evidence.figure("opposite_crashing_child_exit_status", children)
    if children != CRASHES[crash]:
        evidence.not_measured(f"the opposite world's child ended with {children}, not {CRASHES[crash]}: "
                              "it did not crash as planned")
    evidence.control("rounds_victim_reached_its_crash", value=sum(bool(s["crash_marks"]) for s in seen), op="==",
                     threshold=ROUNDS, unit="rounds", why="the victim task did not reach its crash in every round")
    crashing_child = "the same crash made by a child process of the host instead of a task, interleaved runs"
    # A crash that kills the process predicts a fatal signal and no report in every round; coroutines contained
    # as processes are predict exit 0 and a report. One surviving host is a counterexample.
    evidence.support("rounds_host_survived", value=sum(not s["killed"] for s in seen), op="==", threshold=0,
                     unit="rounds", opposite=Opposite(crashing_child, value=sum(not h["killed"] for h in hosts)),
                     why="the tasks share one thread of one process, which the signal ends")
    evidence.support("rounds_host_reported", value=sum(s["main_reported"] for s in seen), op="==", threshold=0,
                     unit="rounds", opposite=Opposite(crashing_child, value=sum(h["main_reported"] for h in hosts)),
                     why="the loop died with the crashing task")
    evidence.settle(benchmark)
