"""PR2's supervisor: per round, fork a heartbeat sibling and a victim that crashes; report what survived.

Usage: python -m harness.children.crash_supervisor KIND ROUNDS CRASH_AFTER_S OBSERVE_S HEARTBEAT_S

Each round the victim, started beside the sibling, waits for the sibling's first beat, runs
CRASH_AFTER_S, then crashes (harness.children.crash). Once the
victim is reaped, the supervisor watches the sibling for OBSERVE_S and counts the beats it
made in that window, in shared memory. Rounds run in one supervisor, so the fork of two
small processes is what a round costs, not an interpreter start.
"""
from __future__ import annotations

import multiprocessing
import sys
import time

from harness.children import emit
from harness.children.crash import crash, status

SIBLING_START_TIMEOUT_S = 20.0  # a spawned sibling's start, on a busy machine


def sibling(beats, stop, beat_s: float) -> None:
    while not stop.value:
        beats.value += 1
        time.sleep(beat_s)


def victim(kind: str, crash_after_s: float, beats=None) -> None:
    """Crash after crash_after_s; given the sibling's beats, counted from its first beat: a spawned sibling
    takes longer to start than the victim takes to crash, and one not yet running would read as stopped."""
    deadline = time.monotonic() + SIBLING_START_TIMEOUT_S
    while beats is not None and not beats.value and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(crash_after_s)
    crash(kind)


def one_round(ctx, kind: str, crash_after_s: float, observe_s: float, beat_s: float) -> dict:
    t0 = time.perf_counter()
    beats, stop = ctx.RawValue("l", 0), ctx.RawValue("b", 0)
    sib = ctx.Process(target=sibling, args=(beats, stop, beat_s))
    vic = ctx.Process(target=victim, args=(kind, crash_after_s, beats))  # both start at once; see victim()
    sib.start()
    vic.start()
    vic.join()
    at_crash = beats.value
    time.sleep(observe_s)
    after = beats.value - at_crash
    alive = sib.is_alive()
    stop.value = 1
    sib.join()
    return {"victim": status(vic.exitcode), "sibling_alive": alive, "sibling_beats_after_crash": after,
            "sibling_exit": status(sib.exitcode), "round_s": time.perf_counter() - t0}


def main(kind: str, rounds: int, crash_after_s: float, observe_s: float, beat_s: float) -> None:
    ctx = multiprocessing.get_context("fork")
    emit([one_round(ctx, kind, crash_after_s, observe_s, beat_s) for _ in range(rounds)])


def host_with_crashing_child(kind: str, crash_after_s: float, beat_s: float, timeout: float) -> dict:
    """From the caller's side: one round of this program in a fresh host, read for what the host did
    (its exit status, whether it reported) and how its child ended. TH2's and IN2's opposite world:
    the same crash, made by a child process of the host instead of a unit inside it."""
    from harness.subproc import RESULT_PREFIX, run_module  # caller-side only

    outcome = run_module("harness.children.crash_supervisor", kind, 1, crash_after_s, 0.0, beat_s, timeout=timeout)
    reported = any(line.startswith(RESULT_PREFIX) for line in outcome.stdout.splitlines())
    return {"status": outcome.signal_name or f"exit {outcome.returncode}", "killed": outcome.returncode < 0,
            "main_reported": reported, "child_status": outcome.result()[0]["victim"] if reported else "unknown"}


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6]))
