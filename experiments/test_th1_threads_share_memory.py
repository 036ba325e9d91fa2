"""TH1: threads share their process's memory, so protecting shared data is harder.

What is measured:
- sharing: a thread writes to a module global and creates an object that it stores there;
  after joining it, the main thread counts how many of the thread's writes it sees, and
  whether the object it reads back is that very object (the id() the thread recorded). The
  opposite world: the same writes made by a child process (spawn), once; none are seen here.
- protection: RMW_THREADS threads do an unsynchronised read-modify-write of one counter
  through a Python function (``box[0] = bump(box[0])``), with no forced yield: the interpreter
  may hand the GIL over where the function starts, between the read and the write. The
  opposite world, in interleaved rounds: the same read-modify-write under a threading.Lock.
  A bare ``box[0] += 1`` is measured too, as a figure: on a GIL build from 3.11 on the
  interpreter never offers the GIL between its read and its write, so it loses nothing there.

Why this method: sharing shows as writes seen and the same object read back (a process, PR1,
sees none and could only get a copy). "Harder to protect" shows as updates lost without a
lock, and none with one: the loss is the race, not a broken counter.

How it is decided: unseen writes and foreign objects are counterexamples, counted over all
rounds (any one refutes sharing). Lost updates are counted over the rounds: one lost update
shows that unprotected shared data breaks, and the locked opposite world, judged by the same
count, must lose none. How many writes the thread makes is fixed by its own loop: a figure.

Known traps: whether a read-modify-write races depends on where the interpreter offers the
GIL (an implementation detail): a bare `x += 1` does not on a GIL build, a function call
between the read and the write does. Each thread must run for several switch intervals, or
the threads simply take turns and nothing is lost.
"""
from __future__ import annotations

import multiprocessing
import sys
import threading

import pytest

from harness.evidence import Opposite
from harness.scale import pick

ROUNDS = pick(quick=3, full=10)  # sharing: a counterexample hunt, no interval
RMW_ROUNDS = pick(quick=6, full=10)  # lost updates: a counterexample hunt over interleaved rounds of both worlds
THREAD_WRITES = 100  # items the thread appends to the shared list
RMW_THREADS = 4
RMW_INCREMENTS = pick(quick=50_000, full=200_000)  # per thread: each runs for several 5 ms switch intervals
# Under the lock every increment hands the lock (and the GIL) over: far slower, and its prediction (none
# lost) does not depend on how many, so the opposite world runs a tenth of the increments.
LOCKED_INCREMENTS = RMW_INCREMENTS // 10
# The GIL is handed over at most once per switch interval. At the default 5 ms a round offers only a few
# hand-overs, and a round may pass without any landing between a read and its write; at 50 µs it offers
# hundreds. Both worlds run at the same interval, so the lock's world is offered the same chances.
RMW_SWITCH_INTERVAL_S = 5e-5
# Lost updates summed over the rounds. Unprotected shared data that breaks predicts some lost; data that
# needs no protection (or a lock) predicts none. One lost update decides: a count above 0.
MAX_SAFE_LOST = 0

SHARED = {"writer": "main", "items": []}
CHILD_TIMEOUT_S = 60  # the opposite world's writer process: start, write, report


def sharing_round() -> dict:
    """One thread writes SHARED and stores a new object there; what does the main thread see?"""
    SHARED.update(writer="main", items=[])
    SHARED.pop("made_by_thread", None)
    made_id = []

    def writer():
        SHARED["writer"] = "thread"
        SHARED["items"].extend(range(THREAD_WRITES))
        made = [object()]  # a new object, created in the thread ...
        SHARED["made_by_thread"] = made  # ... and stored where the main thread looks
        made_id.append(id(made))

    t = threading.Thread(target=writer)
    t.start()
    t.join()
    read_back = SHARED.pop("made_by_thread", None)
    return {"seen": len(SHARED["items"]) + (SHARED["writer"] == "thread"),
            "same_object": bool(made_id) and read_back is not None and id(read_back) == made_id[0]}


def process_writer(sender) -> None:
    """In a child process: the thread's writes, made to this process's own SHARED."""
    SHARED["writer"] = "thread"
    SHARED["items"].extend(range(THREAD_WRITES))
    sender.send(len(SHARED["items"]) + (SHARED["writer"] == "thread"))
    sender.close()


def process_round() -> int:
    """The opposite world: the same writes made by a child process; returns the writes unseen here."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=process_writer, args=(sender,))
    child.start()
    sender.close()
    try:
        if not receiver.poll(CHILD_TIMEOUT_S):
            raise RuntimeError(f"the writer process sent nothing within {CHILD_TIMEOUT_S} s")
        made = receiver.recv()
    finally:
        receiver.close()
        child.join(CHILD_TIMEOUT_S)
        if child.is_alive():
            child.kill()
            child.join()
    if made != THREAD_WRITES + 1:
        raise RuntimeError(f"the writer process made {made} writes, not {THREAD_WRITES + 1}")
    return made - (len(SHARED["items"]) + (SHARED["writer"] == "thread"))


@pytest.mark.claim("TH1")
def test_thread_writes_are_visible_to_other_threads(benchmark, evidence):
    rounds = []
    benchmark.group = "TH1 start a thread that writes a global, join it"
    benchmark.pedantic(lambda: rounds.append(sharing_round()), rounds=ROUNDS)
    SHARED.update(writer="main", items=[])

    writes = THREAD_WRITES + 1  # items plus the writer field
    evidence.condition(rounds=ROUNDS)
    evidence.figure("thread_writes_made", writes, "writes per round")
    # Shared memory predicts every write seen and the very object read back; separate copies
    # (processes, PR1) predict none seen and no such object. One miss refutes sharing.
    unseen_from_a_process = process_round()
    evidence.figure("thread_writes_unseen_by_main_opposite", unseen_from_a_process, "writes")
    evidence.support("thread_writes_unseen_by_main", value=sum(writes - r["seen"] for r in rounds), op="==",
                     threshold=0, unit="writes",
                     why="the thread wrote the main thread's own objects (items plus the writer field)",
                     opposite=Opposite("the same writes made by a child process (spawn) to its own globals",
                                       value=unseen_from_a_process))
    evidence.support(
        "rounds_with_a_different_object", value=sum(not r["same_object"] for r in rounds), op="==", threshold=0,
        unit="rounds",
        why="one address space: what the thread created and stored is, read back, the same object (same id())",
    )
    evidence.settle(benchmark)


def bump(value: int) -> int:
    return value + 1


def _run_counters(increments: int, lock: threading.Lock | None, body: str = "call") -> int:
    """RMW_THREADS threads each add 1 `increments` times to one counter; return its final value."""
    box = [0]

    def unsafe():
        for _ in range(increments):
            box[0] = bump(box[0])  # read, call (where the GIL may be handed over), write

    def inplace():
        for _ in range(increments):
            box[0] += 1

    def locked():
        for _ in range(increments):
            with lock:
                box[0] = bump(box[0])

    target = locked if lock else unsafe if body == "call" else inplace
    threads = [threading.Thread(target=target) for _ in range(RMW_THREADS)]
    before = sys.getswitchinterval()
    sys.setswitchinterval(RMW_SWITCH_INTERVAL_S)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    return box[0]


@pytest.mark.claim("TH1")
def test_unsynchronised_read_modify_write_across_threads_loses_updates(benchmark, evidence):
    total, locked_total = RMW_THREADS * RMW_INCREMENTS, RMW_THREADS * LOCKED_INCREMENTS
    finals = {"unlocked": [], "locked": []}
    lock = threading.Lock()

    def setup():  # the opposite world, interleaved: one locked round before each unlocked one
        finals["locked"].append(_run_counters(LOCKED_INCREMENTS, lock))

    benchmark.group = "TH1 unsynchronised read-modify-write in threads"
    benchmark.pedantic(lambda: finals["unlocked"].append(_run_counters(RMW_INCREMENTS, None)),
                       setup=setup, rounds=RMW_ROUNDS)
    inplace_lost = total - _run_counters(RMW_INCREMENTS, None, body="inplace")

    evidence.condition(threads=RMW_THREADS, increments_per_thread=RMW_INCREMENTS,
                       locked_increments_per_thread=LOCKED_INCREMENTS, switch_interval_s=RMW_SWITCH_INTERVAL_S)
    evidence.figure("expected_count", total, "increments")
    evidence.figure("lost_fraction_unlocked", unit="of increments",
                    samples=[(total - v) / total for v in finals["unlocked"]])
    evidence.figure("lost_updates_bare_inplace_add", inplace_lost, "updates")
    evidence.note("a bare `box[0] += 1` (a figure): on a GIL build from 3.11 on, the GIL is never offered "
                  "between its read and its write")
    evidence.figure("lost_updates_unlocked_opposite", sum(locked_total - v for v in finals["locked"]), "updates")
    evidence.support(
        "lost_updates_unlocked", op=">", threshold=MAX_SAFE_LOST, unit="updates",
        value=sum(total - v for v in finals["unlocked"]),
        opposite=Opposite("the same read-modify-write under a threading.Lock, interleaved rounds",
                          value=sum(locked_total - v for v in finals["locked"])),
        why="another thread's writes land between a read and its write, and are overwritten",
    )
    evidence.settle(benchmark)
