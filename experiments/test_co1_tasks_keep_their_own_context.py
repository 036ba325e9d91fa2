"""CO1: like threads, coroutines are independent units, each keeping its own context.

What is measured: TASKS tasks on one loop (asyncio and uvloop) each set a
contextvars.ContextVar to their own id, then await asyncio.sleep(0) repeatedly (every await
hands the loop to the next ready task) and read the ContextVar after each await. A child task
made with create_task sets the variable too, and its parent reads its own value afterwards.
A trace of which task ran counts the interleavings that actually happened.

Why this method: if the tasks shared one context, a task reading after an await would find
the value the last task to run had set: a mismatch at nearly every interleaved await. The
control: a module-level dict every task writes before the same await is found overwritten
after it, so the check does catch shared state whenever other tasks ran in between.

The second part reads "own context" as execution state: TASKS tasks each keep their id, a
label, a position counter and a running sum in plain locals, await asyncio.sleep(0)
AWAITS_PER_TASK times, and after each await compare those locals with the snapshot they took
before it; a shared turn counter shows whether other tasks ran in between. Each task must end
at position AWAITS_PER_TASK with the running sum a plain loop computes. Its opposite world: the
same per-task state kept on one shared frame-like dict that every task writes before the same
await, compared after it in the same way.

The opposite worlds (harness.evidence.Opposite), measured in the same tasks at the same awaits:
- for the mismatches: the same per-task value kept in a plain module global that all the tasks
  share (the control's dict), read after the very same await and counted the same way;
- for the child's leak: the same child coroutine awaited directly instead of wrapped in a task.
  A coroutine awaited directly runs in its caller's context (no copy is made), so its set()
  lands in the parent's context: the child shares the context that a task would have copied.
Each check decides only when its two worlds land on opposite sides of 0.

How it is decided: mismatches and children's leaks are counterexamples, counted over all
rounds: one refutes the claim. When the control shows nothing (no interleaving, no global
overwritten), the experiment could not have seen a shared context either, and the part is
not measured. That a child starts from a copy of its parent's context is create_task's
documented behaviour: a figure.

Known traps: sleep(0) round-robin order is the loop's; the trace records what happened
rather than assuming it.
"""
from __future__ import annotations

import asyncio
import contextvars

import pytest

from harness import aio
from harness.aio import bench_async
from harness.evidence import Opposite
from harness.scale import pick

ROUNDS = pick(quick=6, full=20)
TASKS = pick(quick=200, full=1_000)  # concurrent tasks per round
AWAITS_PER_TASK = pick(quick=20, full=30)
# The control's floor: the share of checks at which the shared global was found overwritten.
# Tasks that take turns at every await predict nearly all; tasks that never interleave, none.
MIN_CLOBBERED_FRACTION = 0.5
# The second part's control floor: the share of awaits through which another task ran.
# Tasks that take turns at every await predict nearly all; tasks run one after another, none.
MIN_OTHERS_RAN_FRACTION = 0.5

CURRENT = contextvars.ContextVar("current_task_id")
LAST_WRITER = {"id": None}  # the control: a global every task writes


async def _keep_own_context(task_id: int, trace: list) -> dict:
    CURRENT.set(task_id)
    mismatches = clobbered = 0
    for _ in range(AWAITS_PER_TASK):
        LAST_WRITER["id"] = task_id
        trace.append(task_id)
        await asyncio.sleep(0)
        mismatches += CURRENT.get() != task_id  # only the ContextVar could change here
        clobbered += LAST_WRITER["id"] != task_id

    async def child():
        inherited = CURRENT.get()
        CURRENT.set(-task_id - 1)
        await asyncio.sleep(0)
        return inherited

    inherited = await asyncio.create_task(child())
    leaked = CURRENT.get() != task_id
    await child()  # the opposite world: the same child awaited directly, in this task's own context
    return {"mismatches": mismatches, "clobbered": clobbered, "child_inherited": inherited == task_id,
            "child_leaked": leaked, "direct_child_leaked": CURRENT.get() != task_id}


def context_rounds(benchmark, loop) -> list[dict]:
    """ROUNDS rounds of TASKS tasks checking their context; per round, the summed counts."""
    rounds = []

    async def many_tasks():
        trace = []
        results = await asyncio.gather(*(_keep_own_context(i, trace) for i in range(TASKS)))
        switches = sum(a != b for a, b in zip(trace, trace[1:]))
        rounds.append({key: sum(r[key] for r in results) for key in results[0]} | {"interleavings": switches})

    bench_async(benchmark, loop, many_tasks, rounds=ROUNDS)
    return rounds


@pytest.mark.claim("CO1")
def test_each_task_keeps_its_own_locals_and_context_across_interleavings(benchmark, evidence, loop):
    benchmark.group = "CO1 tasks checking their context across awaits"
    rounds = context_rounds(benchmark, loop)

    awaits = TASKS * AWAITS_PER_TASK
    evidence.condition(loop=aio.kind(loop), tasks=TASKS, awaits_per_task=AWAITS_PER_TASK)
    evidence.figure("interleavings", unit=f"of {awaits} awaits", samples=[r["interleavings"] for r in rounds])
    evidence.figure("contextvar_mismatches", unit=f"of {awaits} checks", samples=[r["mismatches"] for r in rounds])
    evidence.figure("global_clobbered", unit=f"of {awaits} checks", samples=[r["clobbered"] for r in rounds])
    evidence.figure("children_inherited_context", min(r["child_inherited"] for r in rounds), f"of {TASKS} tasks")
    evidence.note("locals and position across awaits: the second part, "
                  "test_each_task_resumes_where_it_left_off_with_its_own_locals")
    evidence.note("a child made with create_task starts from a copy of its parent's context (documented behaviour)")
    evidence.control("global_clobbered_fraction", op=">=", threshold=MIN_CLOBBERED_FRACTION, unit="of checks",
                     samples=[r["clobbered"] / awaits for r in rounds],
                     why="the tasks did not take turns, so a shared context could not have shown")
    # Own contexts predict 0 mismatches; one shared context predicts one at nearly every
    # check after another task ran. One mismatch is a counterexample: the threshold is 0.
    # The opposite world: the same value in a global all the tasks share, read after the same awaits.
    evidence.support("contextvar_mismatches_total", value=sum(r["mismatches"] for r in rounds), op="==", threshold=0,
                     unit="checks",
                     opposite=Opposite("the same per-task value kept in a module global shared by the tasks, "
                                       "read after the same awaits", value=sum(r["clobbered"] for r in rounds)),
                     why="each task's ContextVar value survives other tasks running and setting theirs")
    # A child's copy predicts its set() never reaches the parent; a shared context, always.
    evidence.support("children_leaked_into_parent", value=sum(r["child_leaked"] for r in rounds), op="==",
                     threshold=0, unit="tasks",
                     opposite=Opposite("the same child coroutine awaited directly, in its parent's context "
                                       "(no task, no copy)", value=sum(r["direct_child_leaked"] for r in rounds)),
                     why="a child's set() changes only its own copy of the context")
    evidence.settle(benchmark)


async def _resume_where_it_left_off(task_id: int, turns: list, shared: dict) -> dict:
    """Locals and position kept across AWAITS_PER_TASK awaits; the same state on `shared` beside them."""
    label, position, total = f"task-{task_id}", 0, 0
    mismatches = clobbered = others_ran = 0
    for _ in range(AWAITS_PER_TASK):
        left = (task_id, label, position, total)
        shared.update(task_id=task_id, label=label, position=position, total=total)  # the opposite world
        turns[0] += 1
        before = turns[0]
        await asyncio.sleep(0)
        others_ran += turns[0] != before
        mismatches += (task_id, label, position, total) != left
        clobbered += (shared["task_id"], shared["label"], shared["position"], shared["total"]) != left
        position += 1
        total += task_id + position
    expected = AWAITS_PER_TASK * task_id + AWAITS_PER_TASK * (AWAITS_PER_TASK + 1) // 2
    mismatches += (position, total) != (AWAITS_PER_TASK, expected)  # resumed once per await, in order
    return {"mismatches": mismatches, "clobbered": clobbered, "others_ran": others_ran}


def resume_rounds(benchmark, loop) -> list[dict]:
    """ROUNDS rounds of TASKS tasks checking their locals after each await; per round, the summed counts."""
    rounds = []

    async def many_tasks():
        turns, shared = [0], {}
        results = await asyncio.gather(*(_resume_where_it_left_off(i, turns, shared) for i in range(TASKS)))
        rounds.append({key: sum(r[key] for r in results) for key in results[0]})

    bench_async(benchmark, loop, many_tasks, rounds=ROUNDS)
    return rounds


@pytest.mark.claim("CO1")
def test_each_task_resumes_where_it_left_off_with_its_own_locals(benchmark, evidence, loop):
    benchmark.group = "CO1 tasks checking their locals across awaits"
    rounds = resume_rounds(benchmark, loop)

    awaits = TASKS * AWAITS_PER_TASK
    evidence.condition(loop=aio.kind(loop), tasks=TASKS, awaits_per_task=AWAITS_PER_TASK)
    evidence.figure("resumed_state_mismatches", unit=f"of {awaits + TASKS} checks",
                    samples=[r["mismatches"] for r in rounds])
    evidence.figure("shared_state_clobbered", unit=f"of {awaits} checks", samples=[r["clobbered"] for r in rounds])
    evidence.figure("awaits_with_others_between", unit=f"of {awaits} awaits", samples=[r["others_ran"] for r in rounds])
    evidence.control("awaits_with_others_between_fraction", op=">=", threshold=MIN_OTHERS_RAN_FRACTION,
                     unit="of awaits", samples=[r["others_ran"] / awaits for r in rounds],
                     why="other tasks did not run between a task's awaits, so lost execution state could not "
                         "have shown")
    # Own frames predict 0 mismatches; state kept where the other tasks write predicts one at
    # nearly every await that another task ran through. One mismatch is a counterexample.
    evidence.support("resumed_state_mismatches_total", value=sum(r["mismatches"] for r in rounds), op="==",
                     threshold=0, unit="checks",
                     opposite=Opposite("the same per-task state kept on one shared frame-like dict that every "
                                       "task writes, read after the same awaits",
                                       value=sum(r["clobbered"] for r in rounds)),
                     why="each task resumes at its own position with its own locals, whatever ran in between")
    evidence.settle(benchmark)
