"""The crash experiments' host rounds (TH2, IN2, CO8): fresh hosts whose unit crashes beside a heartbeat.

Each host is a child program (harness.children.crash_threads, interp_crash, coro_crash) run as
`python -m MODULE KIND CRASH_AFTER_S HEARTBEAT_S HEARTBEATS`: it writes BEAT per heartbeat and a
CRASH line (CRASH, or CRASH and a word) just before its unit crashes, and reports only if it
outlives the crash. The opposite world, the same crash made by a child process of a host
(crash_supervisor.host_with_crashing_child), runs untimed before each of the first
`opposite_rounds` rounds.
"""
from __future__ import annotations

from harness.children.crash import BEAT, CRASH
from harness.children.crash_supervisor import host_with_crashing_child
from harness.subproc import RESULT_PREFIX, run_module


def host_rounds(benchmark, module: str, kind: str, *, rounds: int, crash_after_s: float, beat_s: float, beats: int,
                timeout: float, opposite: list | None = None, opposite_rounds: int = 0) -> list[dict]:
    """`rounds` hosts of `module` (timed by the benchmark), read by read_host; with `opposite` (a list), the
    opposite world's outcomes are appended there."""
    outcomes = []

    def setup():
        if opposite is not None and len(opposite) < opposite_rounds:
            opposite.append(host_with_crashing_child(kind, crash_after_s, beat_s, timeout))

    benchmark.pedantic(lambda: outcomes.append(run_module(module, kind, crash_after_s, beat_s, beats,
                                                          timeout=timeout)),
                       setup=setup, rounds=rounds)
    return [read_host(o) for o in outcomes]


def read_host(outcome) -> dict:
    """What one host left behind: how it ended, its beats (all, and after the CRASH line), the words after each
    CRASH marker, and its report (None if it died before reporting)."""
    lines = outcome.stdout.splitlines()
    marks = [i for i, line in enumerate(lines) if line == CRASH or line.startswith(CRASH + " ")]
    crash_at = marks[0] if marks else len(lines)
    reported = any(line.startswith(RESULT_PREFIX) for line in lines)
    return {"status": outcome.signal_name or f"exit {outcome.returncode}", "killed": outcome.returncode < 0,
            "beats": lines.count(BEAT), "beats_after_crash": lines[crash_at:].count(BEAT),
            "crash_marks": [lines[i][len(CRASH):].strip() for i in marks], "main_reported": reported,
            "result": outcome.result() if reported else None}
