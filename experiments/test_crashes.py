"""PR2 and TH2: a crashing process leaves the others running; a crashing thread does not.

What is measured, always in a fresh interpreter (harness.subproc.run_python) so that no crash
can reach pytest:
- PR2: a supervisor process forks a sibling that counts heartbeats into shared memory and a
  victim that segfaults (ctypes.string_at(0)), aborts (os.abort) or exits non-zero. The
  supervisor reports the victim's exit status, whether the sibling is still alive, and how
  many heartbeats the sibling made *after* the victim was reaped.
- PR2's caveat: a concurrent.futures.ProcessPoolExecutor whose worker segfaults. The pool
  marks itself broken, fails every pending and running future (innocent tasks included) with
  BrokenProcessPool, terminates its other workers and refuses new work.
- TH2: a process with a heartbeat thread and a thread that crashes natively (SIGSEGV via
  ctypes, or os.abort). The heartbeat thread writes a line per beat with os.write (no buffer
  to lose), so the parent counts how much of its planned work it finished; the main thread
  would print a result if it survived.
- TH2's caveat: the same process whose thread raises an unhandled Python exception:
  threading.excepthook sees it, that thread ends, the heartbeat finishes and the process
  exits 0.

How it is decided: from exit statuses (signal names) and survivor counts of every round; the
benchmark times one crash-and-observe subprocess run and decides nothing.

Known traps: the children run with -X faulthandler, which prints a traceback and re-raises
the signal, so the exit status is still the signal's; that stderr is captured, not shown.
multiprocessing.Pool (unlike concurrent.futures) does not notice a dead worker and can wait
forever, which is why the caveat uses ProcessPoolExecutor.
"""
from __future__ import annotations

import pytest

from harness.scale import pick
from harness.skips import needs_linux
from harness.subproc import RESULT_PREFIX, run_python

ROUNDS = pick(quick=2, full=5)
CHILD_TIMEOUT_S = 30.0
CRASH_AFTER_S = 0.03  # the victim (process or thread) runs this long before crashing
OBSERVE_S = 0.1  # how long the supervisor watches the sibling after the crash
HEARTBEAT_S = 0.005
HEARTBEATS = 40  # the heartbeat thread's planned work: ~0.2 s, several times CRASH_AFTER_S
MAX_BEATS_FRACTION_AFTER_NATIVE_CRASH = 0.5  # the crash comes after ~15% of the planned beats
MIN_SIBLING_BEATS_AFTER_CRASH = 5  # OBSERVE_S / HEARTBEAT_S = 20 if the sibling goes on
PROCESS_CRASHES = {"segfault": "SIGSEGV", "abort": "SIGABRT", "exit_nonzero": "exit 3"}
THREAD_CRASHES = {"segfault": "SIGSEGV", "abort": "SIGABRT"}

_STATUS = """
import signal
def status(code):
    return signal.Signals(-code).name if code is not None and code < 0 else f"exit {code}"
"""

_CRASH = """
import ctypes, os, sys
def crash(kind):
    if kind == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif kind == "abort":
        os.abort()
    elif kind == "exit_nonzero":
        sys.exit(3)
    raise ValueError(kind)
"""

SUPERVISOR = _STATUS + _CRASH + """
import multiprocessing, sys, time
kind, crash_after, observe, beat = sys.argv[1], *map(float, sys.argv[2:5])

def sibling(beats, stop):
    while not stop.value:
        beats.value += 1
        time.sleep(beat)

def victim():
    time.sleep(crash_after)
    crash(kind)

ctx = multiprocessing.get_context("fork")
beats, stop = ctx.RawValue("l", 0), ctx.RawValue("b", 0)
sib = ctx.Process(target=sibling, args=(beats, stop))
vic = ctx.Process(target=victim)
sib.start()
vic.start()
vic.join()
at_crash = beats.value
time.sleep(observe)
after = beats.value - at_crash
alive = sib.is_alive()
stop.value = 1
sib.join()
emit({"victim": status(vic.exitcode), "sibling_alive": alive, "sibling_beats_after_crash": after,
      "sibling_exit": status(sib.exitcode)})
"""

BROKEN_POOL = _STATUS + _CRASH + """
import multiprocessing, time
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

def innocent(seconds):
    time.sleep(seconds)
    return "ok"

def outcome(future):
    try:
        future.result()
        return "ok"
    except BrokenProcessPool:
        return "broken"

with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
    list(pool.map(innocent, [0.0, 0.0]))  # both workers are up
    workers = multiprocessing.active_children()
    innocents = [pool.submit(innocent, 0.5)]  # runs in one worker while the other crashes
    crashing = pool.submit(crash, "segfault")
    innocents += [pool.submit(innocent, 0.0) for _ in range(2)]  # queued behind them
    wait(innocents + [crashing])
    try:
        pool.submit(innocent, 0.0).result()
        refuses_work = False
    except BrokenProcessPool:
        refuses_work = True
for w in workers:
    w.join()
emit({"crashing_task": outcome(crashing), "innocent": [outcome(f) for f in innocents],
      "refuses_work": refuses_work, "worker_exits": sorted(status(w.exitcode) for w in workers)})
"""

THREADS = _STATUS + _CRASH + """
import os, sys, threading, time
kind, crash_after, beat, beats = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
hook_saw = []
threading.excepthook = lambda args: hook_saw.append(args.exc_type.__name__)

def heartbeat():
    for _ in range(beats):
        os.write(1, b"BEAT\\n")
        time.sleep(beat)

def victim():
    time.sleep(crash_after)
    os.write(1, b"CRASH\\n")
    if kind == "python_exception":
        raise RuntimeError("unhandled in a thread")
    crash(kind)

threads = [threading.Thread(target=heartbeat), threading.Thread(target=victim)]
for t in threads:
    t.start()
for t in threads:
    t.join()
emit({"hook_saw": hook_saw})
"""


def _run(code: str, *args):
    return run_python(code, timeout=CHILD_TIMEOUT_S, args=args)


def _observe_threads(outcome) -> dict:
    """Beats before/after the crash marker, exit status, and whether the main thread reported."""
    lines = outcome.stdout.splitlines()
    crash_at = lines.index("CRASH") if "CRASH" in lines else len(lines)
    return {
        "status": outcome.signal_name or f"exit {outcome.returncode}",
        "beats": lines.count("BEAT"),
        "beats_after_crash": lines[crash_at:].count("BEAT"),
        "main_reported": any(line.startswith(RESULT_PREFIX) for line in lines),
    }


@pytest.mark.claim("PR2")
@needs_linux
@pytest.mark.parametrize("crash", sorted(PROCESS_CRASHES))
def test_crashing_child_leaves_parent_and_sibling_running(benchmark, evidence, crash):
    outcomes = []
    benchmark.group = "PR2 a child crashes beside a sibling (subprocess run)"
    benchmark.pedantic(
        lambda: outcomes.append(_run(SUPERVISOR, crash, CRASH_AFTER_S, OBSERVE_S, HEARTBEAT_S)), rounds=ROUNDS
    )
    results = [o.result() for o in outcomes]  # raises, with stderr, if the supervisor died

    evidence.condition(crash=crash, start_method="fork", rounds=ROUNDS)
    evidence.figure("sibling_beats_after_crash", unit="beats", samples=[r["sibling_beats_after_crash"] for r in results])
    evidence.figure("sibling_exit_status", ",".join(sorted({r["sibling_exit"] for r in results})))
    statuses = sorted({r["victim"] for r in results})
    evidence.support(
        "victim_exit_status", ",".join(statuses), "==", PROCESS_CRASHES[crash],
        why="the parent learns from the exit status how its child ended",
    )
    evidence.support(
        "supervisor_survived", sum(o.returncode == 0 for o in outcomes), "==", ROUNDS, "rounds",
        why="the parent went on to report after its child crashed",
    )
    evidence.support(
        "sibling_alive_after_crash", sum(r["sibling_alive"] for r in results), "==", ROUNDS, "rounds",
        why="the sibling is a separate process",
    )
    evidence.support(
        "min_sibling_beats_after_crash", min(r["sibling_beats_after_crash"] for r in results), ">=",
        MIN_SIBLING_BEATS_AFTER_CRASH, "beats", why=f"the sibling kept working for the {OBSERVE_S} s watched",
    )
    evidence.settle(benchmark, expect="holds")


@pytest.mark.claim("PR2")
@needs_linux
def test_crashed_worker_breaks_its_process_pool(benchmark, evidence):
    outcomes = []
    benchmark.group = "PR2 a ProcessPoolExecutor worker segfaults (subprocess run)"
    benchmark.pedantic(lambda: outcomes.append(_run(BROKEN_POOL)), rounds=ROUNDS)
    results = [o.result() for o in outcomes]

    evidence.condition(pool="concurrent.futures.ProcessPoolExecutor", workers=2, start_method="fork", rounds=ROUNDS)
    innocent_failed = [r["innocent"].count("broken") for r in results]
    evidence.figure("innocent_tasks_failed", unit="of 3 tasks", samples=innocent_failed)
    evidence.figure("worker_exit_statuses", ",".join(sorted({s for r in results for s in r["worker_exits"]})))
    evidence.note("the pool terminates its surviving worker itself (SIGTERM) when it finds one dead")
    evidence.support(
        "supervisor_survived", sum(o.returncode == 0 for o in outcomes), "==", ROUNDS, "rounds",
        why="even here, only the worker process died",
    )
    # the story of this part: the pool noticed its dead worker and broke (support); the
    # qualification to PR2 is that the breakage reaches tasks that did not crash (caveat)
    evidence.support(
        "pool_refuses_new_work", sum(r["refuses_work"] for r in results), "==", ROUNDS, "rounds",
        why="the pool noticed the dead worker and marked itself broken: it must be replaced",
    )
    evidence.caveat(
        "min_innocent_tasks_failed", min(innocent_failed), ">=", 1, "tasks",
        why="BrokenProcessPool fails every pending and running future, not just the crashing one",
    )
    evidence.settle(benchmark, expect="holds-with-caveat")


@pytest.mark.claim("TH2")
@needs_linux
@pytest.mark.parametrize("crash", sorted(THREAD_CRASHES))
def test_native_crash_in_a_thread_kills_the_whole_process(benchmark, evidence, crash):
    outcomes = []
    benchmark.group = "TH2 a thread crashes beside a heartbeat thread (subprocess run)"
    benchmark.pedantic(
        lambda: outcomes.append(_run(THREADS, crash, CRASH_AFTER_S, HEARTBEAT_S, HEARTBEATS)), rounds=ROUNDS
    )
    seen = [_observe_threads(o) for o in outcomes]

    evidence.condition(crash=crash, planned_heartbeats=HEARTBEATS, crash_after_s=CRASH_AFTER_S, rounds=ROUNDS)
    evidence.figure("heartbeats_done", unit=f"of {HEARTBEATS}", samples=[s["beats"] for s in seen])
    evidence.support(
        "process_exit_status", ",".join(sorted({s["status"] for s in seen})), "==", THREAD_CRASHES[crash],
        why="a fatal signal is delivered to the process, whichever thread caused it",
    )
    evidence.support(
        "max_heartbeat_fraction_done", max(s["beats"] for s in seen) / HEARTBEATS, "<=",
        MAX_BEATS_FRACTION_AFTER_NATIVE_CRASH, "x", why="the other thread's work stopped with the process",
    )
    evidence.support(
        "main_thread_reported", sum(s["main_reported"] for s in seen), "==", 0, "rounds",
        why="the main thread died too",
    )
    evidence.settle(benchmark, expect="holds")


@pytest.mark.claim("TH2")
@needs_linux
def test_python_exception_in_a_thread_ends_only_that_thread(benchmark, evidence):
    outcomes = []
    benchmark.group = "TH2 a thread raises beside a heartbeat thread (subprocess run)"
    benchmark.pedantic(
        lambda: outcomes.append(_run(THREADS, "python_exception", CRASH_AFTER_S, HEARTBEAT_S, HEARTBEATS)),
        rounds=ROUNDS,
    )
    seen = [_observe_threads(o) for o in outcomes]
    hooks = [o.result()["hook_saw"] if s["main_reported"] else [] for o, s in zip(outcomes, seen)]

    evidence.condition(crash="python_exception", planned_heartbeats=HEARTBEATS, rounds=ROUNDS)
    evidence.figure("heartbeats_done", unit=f"of {HEARTBEATS}", samples=[s["beats"] for s in seen])
    evidence.figure("excepthook_saw", ",".join(sorted({name for h in hooks for name in h})) or "nothing")
    # the story of this part: the process survived the exception (support); the
    # qualification to TH2 is that the other thread's work went on after it (caveat)
    evidence.support(
        "processes_exited_0", sum(s["status"] == "exit 0" for s in seen), "==", ROUNDS, "rounds",
        why="an unhandled Python exception ends only its own thread (threading.excepthook reports it)",
    )
    evidence.support(
        "main_thread_reported", sum(s["main_reported"] for s in seen), "==", ROUNDS, "rounds",
        why="the main thread joined both threads and printed its result",
    )
    evidence.caveat(
        "min_heartbeats_after_exception", min(s["beats_after_crash"] for s in seen), ">=", 1, "beats",
        why="the other thread went on working after the exception",
    )
    evidence.settle(benchmark, expect="holds-with-caveat")
