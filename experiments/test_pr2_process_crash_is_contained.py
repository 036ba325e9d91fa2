"""PR2: a process that crashes leaves the other processes running.

What is measured, always under a fresh supervisor interpreter (harness.subproc.run_module),
so that no crash can reach pytest:
- harness.children.crash_supervisor forks, per round, a sibling that counts heartbeats into
  shared memory and a victim that segfaults (ctypes.string_at(0)), aborts (os.abort) or exits
  non-zero. The segfault is also made with the victim and sibling started by forkserver and by
  spawn (a part each), so that each start method's processes have a containment figure. The
  victim's clock starts at the sibling's first beat (a spawned sibling starts slower than the
  victim crashes, and one not yet running would read as stopped by the crash). It
  reports the victim's exit status, whether the sibling is still alive, and how many beats
  the sibling made in the OBSERVE_S after the victim was reaped.
- the caveat, harness.children.crash_pool: a concurrent.futures.ProcessPoolExecutor whose
  worker segfaults. The pool marks itself broken, fails every pending and running future
  (innocent tasks included) with BrokenProcessPool, terminates its other worker and refuses
  new work.

Why this method: if a crash took the other processes down, the supervisor would print no
report and the sibling would stop beating; contained, both go on. The control is TH2
(test_th2_thread_crash_kills_process.py): the same native crashes, made by a thread instead
of a process, do kill the process they happen in.

The opposite world (harness.evidence.Opposite), in the same supervisor: in its first
OPPOSITE_ROUNDS rounds (one in the quick run) both worlds run, in alternating order. There the
victim's sibling and supervisor are threads of the process that crashes, instead of processes
of their own: the supervisor forks one host process that runs the same heartbeat
(crash_supervisor.sibling) in one thread and the victim in another, while its main thread
supervises them and reports (through a pipe) once its victim has ended, as the supervisor does
(harness.children.crash_thread_world). The victim crashes the same way after the same
CRASH_AFTER_S (exit_nonzero: os._exit(3), which is how a multiprocessing child ends on
sys.exit(3); sys.exit in a thread would end only that thread, TH2's caveat). Once the host is
reaped, the supervisor watches the heartbeat for the same OBSERVE_S. A crash that reaches
everything in its process predicts, in every such round, the sibling dead with no beats and the
supervising thread dead before it reported.

How it is decided: the supervisor's and the sibling's deaths are counterexamples, counted
over all rounds; the sibling's beats after the crash, as a share of the beats the window
holds, per round by its interval. The two deaths are counted in the opposite world too, and
each decides only when it lands on the other side of 0 (the beats there are a figure: an
interval needs six rounds, and the deaths need one). That the victim ended as told (its exit
status, and its host's in the opposite world) is the experiment's premise: a figure, and the
part is not measured if it did not. The pool's breakage is the caveat, and its owner's
survival its support.

Known traps: the children run with -X faulthandler, which prints a traceback and re-raises
the signal, so the exit status is still the signal's; that stderr is captured, not shown.
multiprocessing.Pool (unlike concurrent.futures) does not notice a dead worker and can wait
forever, which is why the caveat uses ProcessPoolExecutor.
"""
from __future__ import annotations

import pytest

from harness.children.crash import EXIT_CODE
from harness.children.crash_thread_world import CHILD_TIMEOUT_S, WORLDS
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux
from harness.subproc import run_module
from harness.timing import replay

ROUNDS = pick(quick=6, full=12)  # rounds inside one supervisor; the beats decide by their interval
# Rounds that also run the opposite world. It decides counts only (one dead sibling, one silent supervisor),
# which a single round already shows: the quick run spends one.
OPPOSITE_ROUNDS = pick(quick=1, full=ROUNDS)
POOL_ROUNDS = pick(quick=2, full=5)  # one interpreter each
CRASH_AFTER_S = 0.01  # the victim runs this long before crashing
OBSERVE_S = 0.03  # how long the supervisor watches the sibling after the crash
HEARTBEAT_S = 0.002
INNOCENT_S = 0.1  # the innocent task that runs while its neighbour worker crashes
# The sibling's beats after the crash, over the OBSERVE_S / HEARTBEAT_S the window holds. A
# contained crash predicts about 1 (slow wake-ups on a busy machine lower it); a crash that
# takes the sibling down predicts 0. The threshold sits between, nearer 0 for the wake-ups.
MIN_BEATS_FRACTION = 0.3
PROCESS_CRASHES = {"segfault": "SIGSEGV", "abort": "SIGABRT", "exit_nonzero": f"exit {EXIT_CODE}"}
SUPERVISOR = "harness.children.crash_thread_world"  # both worlds' supervisor program


# Every crash with fork; the native crash also with the other start methods (the victim and its sibling
# are then spawned, or forked by the forkserver, not forked from the supervisor itself).
CASES = [pytest.param(crash, "fork", id=crash) for crash in sorted(PROCESS_CRASHES)] + [
    pytest.param("segfault", method, id=f"segfault-{method}") for method in ("forkserver", "spawn")]


def supervise(benchmark, crash: str, method: str) -> list[dict] | None:
    """The supervisor's per-round reports of both worlds (the claim's round times go to the benchmark),
    or None if it died."""
    outcome = run_module(SUPERVISOR, crash, ROUNDS, OPPOSITE_ROUNDS, CRASH_AFTER_S, OBSERVE_S, HEARTBEAT_S, method,
                         timeout=CHILD_TIMEOUT_S)
    try:
        rounds = outcome.result()
    except RuntimeError:
        benchmark.pedantic(lambda: None, rounds=1)  # settle() needs a benchmark that ran
        return None
    replay(benchmark, [r["process"]["round_s"] for r in rounds])
    return rounds


@pytest.mark.claim("PR2")
@needs_linux
@pytest.mark.parametrize(("crash", "start_method"), CASES)
def test_crashing_child_leaves_parent_and_sibling_running(benchmark, evidence, crash, start_method):
    benchmark.group = "PR2 a child crashes beside a sibling (one round: start both, crash, observe)"
    both = supervise(benchmark, crash, start_method)
    rounds, threads = (None, None) if both is None else ([r[world] for r in both if world in r] for world in WORLDS)

    evidence.condition(crash=crash, start_method=start_method, rounds=ROUNDS)
    # The supervisor outliving its child is the first prediction: a crash that spread predicts it dead.
    evidence.support("supervisor_died", value=int(rounds is None), op="==", threshold=0, unit="supervisors",
                     opposite=None if threads is None else Opposite(
                         "the victim a thread of the process whose main thread supervises it, interleaved rounds",
                         value=sum(not r["supervisor_reported"] for r in threads)),
                     why="the parent went on to report after its children crashed")
    if rounds is None:
        evidence.settle(benchmark)
        return
    statuses = ",".join(sorted({r["victim"] for r in rounds}))
    evidence.figure("victim_exit_status", statuses)
    evidence.figure("sibling_exit_status", ",".join(sorted({r["sibling_exit"] for r in rounds})))
    evidence.figure("sibling_beats_after_crash", unit="beats", samples=[r["sibling_beats_after_crash"] for r in rounds])
    host_statuses = ",".join(sorted({r["victim"] for r in threads}))
    evidence.figure("opposite_host_exit_status", host_statuses)
    if statuses != PROCESS_CRASHES[crash] or host_statuses != PROCESS_CRASHES[crash]:
        evidence.not_measured(f"the victim ended with {statuses} (its host in the opposite world: {host_statuses}), "
                              f"not {PROCESS_CRASHES[crash]}: it did not crash as planned")
    sibling_thread = "the sibling a thread of the crashing process, interleaved rounds"
    evidence.support("rounds_sibling_dead_after_crash", value=sum(not r["sibling_alive"] for r in rounds), op="==",
                     threshold=0, unit="rounds",
                     opposite=Opposite(sibling_thread, value=sum(not r["sibling_alive"] for r in threads)),
                     why="the sibling is a separate process; one dead sibling is a counterexample")
    evidence.figure("opposite_sibling_beats_after_crash", unit="beats",
                    value=max(r["sibling_beats_after_crash"] for r in threads))
    evidence.support(
        "sibling_beats_after_crash_fraction", op=">=", threshold=MIN_BEATS_FRACTION, unit="of the window's beats",
        samples=[r["sibling_beats_after_crash"] * HEARTBEAT_S / OBSERVE_S for r in rounds],
        why=f"the sibling kept working for the {OBSERVE_S} s watched",
    )
    evidence.settle(benchmark)


@pytest.mark.claim("PR2")
@needs_linux
def test_crashed_worker_breaks_its_process_pool(benchmark, evidence):
    outcomes = []
    benchmark.group = "PR2 a ProcessPoolExecutor worker segfaults (subprocess run)"
    benchmark.pedantic(
        lambda: outcomes.append(run_module("harness.children.crash_pool", INNOCENT_S, timeout=CHILD_TIMEOUT_S)),
        rounds=POOL_ROUNDS,
    )
    died = sum(o.returncode != 0 for o in outcomes)

    evidence.condition(pool="concurrent.futures.ProcessPoolExecutor", workers=2, start_method="fork",
                       rounds=POOL_ROUNDS)
    # The pool's owner outliving the crashed worker is what the claim predicts; a crash that
    # spread predicts the owner dead. One death is a counterexample.
    evidence.support("supervisors_died", value=died, op="==", threshold=0, unit="rounds",
                     why="even here, only the worker process died")
    if died:
        evidence.settle(benchmark)
        return
    results = [o.result() for o in outcomes]
    innocent_failed = [r["innocent"].count("broken") for r in results]
    evidence.figure("innocent_tasks_failed", unit="of 3 tasks", samples=innocent_failed)
    evidence.figure("worker_exit_statuses", ",".join(sorted({s for r in results for s in r["worker_exits"]})))
    evidence.note("the pool terminates its surviving worker itself (SIGTERM) when it finds one dead")
    # The qualification: a contained crash that still reaches tasks which did not crash. A pool
    # that failed only the crashing task would show 0 innocent failures and keep its work.
    evidence.caveat("rounds_without_innocent_failures", value=sum(n == 0 for n in innocent_failed), op="==",
                    threshold=0, unit="rounds",
                    why="BrokenProcessPool fails every pending and running future, not just the crashing one")
    evidence.caveat("rounds_pool_kept_taking_work", value=sum(not r["refuses_work"] for r in results), op="==",
                    threshold=0, unit="rounds",
                    why="the pool marked itself broken: it must be replaced")
    evidence.settle(benchmark)

