"""PR2's supervisor with its opposite world: the claim's rounds (crash_supervisor.one_round) and,
in the first OPPOSITE_ROUNDS, the same crash where the sibling and the supervisor are threads of
the process that crashes.

Usage: python -m harness.children.crash_thread_world KIND ROUNDS OPPOSITE_ROUNDS CRASH_AFTER_S OBSERVE_S HEARTBEAT_S
       [START_METHOD]

START_METHOD (fork by default) starts the claim's victim and sibling; the opposite world's host is
always forked, since its sibling and supervisor are threads inside it whatever started it.

The opposite world forks one host process that runs the same heartbeat (crash_supervisor.sibling)
in one thread and the victim in another, while its main thread supervises them and reports
(through a pipe) once its victim has ended, as the supervisor does. The two worlds alternate
which goes first. Emits [{"process": ..., "thread": ...}, ...] ("thread" only where it ran).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from multiprocessing.connection import wait

from harness.children import emit
from harness.children.crash import EXIT_CODE, crash, status
from harness.children.crash_supervisor import one_round, sibling

CHILD_TIMEOUT_S = 30.0
WORLDS = ("process", "thread")  # the claim's world (the sibling a process), the opposite (a thread beside the victim)


def _thread_victim(kind: str, crash_after_s: float) -> None:
    time.sleep(crash_after_s)
    if kind == "exit_nonzero":
        os._exit(EXIT_CODE)  # the process's exit, as multiprocessing ends a child on sys.exit(EXIT_CODE)
    crash(kind)


def _thread_host(kind: str, crash_after_s: float, beats, stop, beat_s: float, report) -> None:
    """The opposite world's host process: the heartbeat sibling in one thread, the victim in another,
    and the main thread supervising them: once its victim ended it reports, as the supervisor does."""
    threads = [threading.Thread(target=sibling, args=(beats, stop, beat_s), name="sibling"),
               threading.Thread(target=_thread_victim, args=(kind, crash_after_s), name="victim")]
    for t in threads:
        t.start()
    threads[1].join()
    report.send(True)  # reached only if the crash left this process running
    threads[0].join()


def thread_round(ctx, kind: str, crash_after_s: float, observe_s: float, beat_s: float) -> dict:
    """One round of the opposite world, reported as crash_supervisor.one_round reports the claim's."""
    t0 = time.perf_counter()
    beats, stop = ctx.RawValue("l", 0), ctx.RawValue("b", 0)
    receiver, sender = ctx.Pipe(duplex=False)
    host = ctx.Process(target=_thread_host, args=(kind, crash_after_s, beats, stop, beat_s, sender))
    try:
        try:
            host.start()
        finally:
            sender.close()
        wait([host.sentinel, receiver], timeout=CHILD_TIMEOUT_S)  # the host died, or it reported
        try:
            reported = receiver.poll(0) and receiver.recv()
        except EOFError:  # the host died: its end of the pipe closed unwritten
            reported = False
        at_crash = beats.value
        time.sleep(observe_s)
        after = beats.value - at_crash
        alive = host.is_alive()
    finally:
        stop.value = 1
        if host.pid is not None:
            host.join(CHILD_TIMEOUT_S)
            if host.is_alive():
                host.kill()
                host.join()
        receiver.close()
    return {"victim": status(host.exitcode), "sibling_alive": alive, "sibling_beats_after_crash": after,
            "sibling_exit": status(host.exitcode), "supervisor_reported": bool(reported),
            "round_s": time.perf_counter() - t0}


def main(kind: str, rounds: int, opposite_rounds: int, crash_after_s: float, observe_s: float, beat_s: float,
         method: str = "fork") -> None:
    """Per round the claim's world (its processes started by `method`), and in the first `opposite_rounds` the
    opposite world too, the two in alternating order; emit [{"process": ..., "thread": ...}, ...] ("thread" only
    where it ran)."""
    ctx = {"process": multiprocessing.get_context(method), "thread": multiprocessing.get_context("fork")}
    run = {"process": one_round, "thread": thread_round}
    reports = []
    for i in range(rounds):
        worlds = WORLDS if i < opposite_rounds else WORLDS[:1]
        order = worlds if i % 2 == 0 else worlds[::-1]
        reports.append({world: run[world](ctx[world], kind, crash_after_s, observe_s, beat_s) for world in order})
    emit(reports)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *map(float, sys.argv[4:7]), *sys.argv[7:8])
