"""IN2: a native crash in one interpreter takes the whole process down; interpreters isolate memory, not crashes.

What is measured, always in fresh host processes (harness.children.interp_crash), so that no
crash can reach pytest: a host whose main interpreter keeps a heartbeat (a line per beat,
written with os.write: no buffer to lose) while a second interpreter, made with PEP 734's API
and run from a thread, crashes natively with the crash TH2 and PR2 use
(harness.children.crash: SIGSEGV through ctypes.string_at(0), or os.abort), exec'd inside that
interpreter. Its code writes CRASH and its interpreter's id just before. The host's main
thread reports only if it outlives the crash.

Why this method: an interpreter has its own modules, objects and (PEP 684) GIL, but it is not
a process: the fatal signal a crash raises is delivered to the process, so the claim predicts
that the host dies by that signal in every round, its heartbeat stops part-way and the main
interpreter never reports. Were interpreters contained as processes are (PR2), the host would
go on, every beat done, and report.

The opposite world (harness.evidence.Opposite), in runs interleaved with the claim's (one
untimed before each of the first OPPOSITE_ROUNDS rounds, as in TH2): the same crash made by a
child process of the host instead of by an interpreter inside it. The host is PR2's supervisor
(harness.children.crash_supervisor, one round): a fresh interpreter forks a victim that crashes
the same way, then reports. The signal then ends only the child, so the host survives.

How it is decided: a round in which the host survived, or its main interpreter reported, is a
counterexample (support; rule "exact": the claim predicts 0), and the opposite world's runs
are counted by the same checks: each decides only when they land on the other side of 0. The
control: the crash really happened inside the second interpreter (its CRASH line, from an
interpreter other than the main one, in every round); where the crash cannot even be set up
there (ctypes refused in a subinterpreter, say), the part is not measured, with the reason.

Known traps: before CPython 3.12, or where the PEP 734 module fails its probe (the backport
crashed on import on 3.12.1), the part is not measured here, with the reason
(harness.interpreters.refusal). The children run with -X faulthandler, which prints a traceback
and re-raises the signal, so the exit status is still the signal's.
"""
from __future__ import annotations

import pytest

from harness import interpreters
from harness.crashhosts import host_rounds
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux

ROUNDS = pick(quick=3, full=5)  # one host per round: a native crash ends it
CHILD_TIMEOUT_S = 30.0
CRASH_AFTER_S = 0.01  # the second interpreter runs this long before crashing
HEARTBEAT_S = 0.002
HEARTBEATS = 25  # the main interpreter's planned work: several times CRASH_AFTER_S
CRASHES = {"segfault": "SIGSEGV", "abort": "SIGABRT"}
# Runs of the opposite world. It decides counts only (one surviving host, one report), which a single run
# already shows: the quick run spends one.
OPPOSITE_ROUNDS = pick(quick=1, full=ROUNDS)


def run_rounds(benchmark, kind: str, opposite: list) -> list[dict]:
    """ROUNDS hosts whose second interpreter crashes; what each left behind (harness.crashhosts). The opposite
    world runs untimed before each of the first OPPOSITE_ROUNDS rounds, appended to `opposite`."""
    seen = host_rounds(benchmark, "harness.children.interp_crash", kind, rounds=ROUNDS, crash_after_s=CRASH_AFTER_S,
                       beat_s=HEARTBEAT_S, beats=HEARTBEATS, timeout=CHILD_TIMEOUT_S, opposite=opposite,
                       opposite_rounds=OPPOSITE_ROUNDS)
    # Each CRASH line names the interpreter it was written from; 0 is the main one.
    return [s | {"crashed_in_a_subinterpreter": bool(s["crash_marks"]) and all(m != "0" for m in s["crash_marks"]),
                 "prepare_error": (s["result"] or {}).get("prepare_error")} for s in seen]


@pytest.mark.claim("IN2")
@needs_linux
@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_native_crash_in_an_interpreter_kills_the_whole_process(benchmark, evidence, crash):
    refusal = interpreters.refusal()
    if refusal:
        evidence.not_measured(refusal)
    benchmark.group = "IN2 an interpreter crashes beside the main one's heartbeat (subprocess run)"
    hosts: list[dict] = []
    seen = run_rounds(benchmark, crash, hosts)

    evidence.condition(crash=crash, crash_after_s=CRASH_AFTER_S, rounds=ROUNDS, module=interpreters.info()["module"])
    errors = sorted({s["prepare_error"] for s in seen if s["prepare_error"]})
    if errors:
        evidence.not_measured(f"the crash could not be set up inside an interpreter: {errors[0]}")
    evidence.figure("host_exit_status", ",".join(sorted({s["status"] for s in seen})))
    evidence.figure("heartbeats_done", unit=f"of {HEARTBEATS}", samples=[s["beats"] for s in seen])
    evidence.figure("heartbeats_after_crash", unit="beats", samples=[s["beats_after_crash"] for s in seen])
    evidence.figure("opposite_host_exit_status", ",".join(sorted({h["status"] for h in hosts})))
    children = ",".join(sorted({h["child_status"] for h in hosts}))
    evidence.figure("opposite_crashing_child_exit_status", children)
    if children != CRASHES[crash]:
        evidence.not_measured(f"the opposite world's child ended with {children}, not {CRASHES[crash]}: "
                              "it did not crash as planned")
    evidence.control("rounds_crashed_in_a_subinterpreter", value=sum(s["crashed_in_a_subinterpreter"] for s in seen),
                     op="==", threshold=ROUNDS, unit="rounds",
                     why="the crashing code did not reach its crash inside the second interpreter in every round")
    crashing_child = "the same crash made by a child process of the host instead of an interpreter, interleaved runs"
    # A crash that kills the process predicts a fatal signal and no report in every round; interpreters
    # contained as processes are predict exit 0 and a report. One surviving host is a counterexample.
    evidence.support("rounds_host_survived", value=sum(not s["killed"] for s in seen), op="==", threshold=0,
                     unit="rounds", opposite=Opposite(crashing_child, value=sum(not h["killed"] for h in hosts)),
                     why="a fatal signal is delivered to the process, whichever interpreter caused it")
    evidence.support("rounds_main_interpreter_reported", value=sum(s["main_reported"] for s in seen), op="==",
                     threshold=0, unit="rounds",
                     opposite=Opposite(crashing_child, value=sum(h["main_reported"] for h in hosts)),
                     why="the main interpreter died with the crashing one")
    evidence.settle(benchmark)
