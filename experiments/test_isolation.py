"""PR1 and TH1: a process owns its memory; threads share theirs (and so lose updates).

What is measured:
- PR1, isolation: the parent changes a module global, starts a child (fork, forkserver,
  spawn), the child writes to the same global and reports what it saw; after joining, the
  parent counts how many of the child's writes it can see. Also recorded: whether the child
  inherited the parent's pre-start change (fork copies the address space; forkserver and
  spawn import the module afresh).
- PR1, copy-on-write: the parent holds a large buffer whose pages are resident; a forked
  child reads its own USS (memory only it maps) and PSS (shared pages split between their
  mappers) from /proc/<pid>/smaps (psutil.memory_full_info), writes one byte to every page
  of the buffer, and reads them again. Private memory that grows by about the buffer's size
  only after the write is copy-on-write: the pages were shared until written.
- TH1: a thread's writes to a global are seen by the main thread, and an object the thread
  creates and stores in the global is, when the main thread reads it back, that very object
  (the id() the thread recorded); k threads doing an unsynchronised read-modify-write of a shared counter, with
  time.sleep(0) between the read and the write to force the interleaving, lose updates;
  the same loop under a threading.Lock loses none (the control, measured in the same rounds).

How it is decided: counts of writes seen and updates lost, and USS/PSS ratios to the buffer
size, all from this run. Timings (child round trip, threaded loop) are the benchmarks and
decide nothing.

Known traps: a forked child's USS is not zero before it writes: the interpreter's own
refcount updates dirty some heap pages, so the check compares with the buffer's size, not
zero. Children are always joined (forkserver/spawn too); pipes, not multiprocessing.Queue,
carry results, so no feeder thread outlives a test.
"""
from __future__ import annotations

import multiprocessing
import threading
import time

import psutil
import pytest

from harness.scale import pick
from harness.skips import needs_linux

START_METHODS = ("fork", "forkserver", "spawn")
ROUNDS = pick(quick=3, full=10)
CHILD_WRITES = 100  # items the child (or thread) appends to the shared list
CHILD_TIMEOUT_S = 30.0
COW_BUFFER_BYTES = pick(quick=64 << 20, full=128 << 20)
PAGE_BYTES = 4096
MAX_SHARED_USS_FRACTION = 0.25  # child's private memory before writing, as a fraction of the buffer
MIN_COPIED_FRACTION = 0.9  # USS growth on writing every page, as a fraction of the buffer
RMW_THREADS = 4
RMW_INCREMENTS = pick(quick=500, full=2_000)  # per thread; the locked control costs ~90 us per increment
MIN_LOST_FRACTION = 0.01  # of all increments; forced interleaving measures far above this

# The state a child process or thread mutates. Module-level, so that a forked child gets a
# copy of it and a spawned one re-creates it on import.
SHARED = {"writer": "parent", "items": [], "before_start": None}


def _mutate_shared(conn, writes: int) -> None:
    """Child process: report what it inherited, write to SHARED, report what it sees."""
    inherited = SHARED["before_start"]
    SHARED["writer"] = "child"
    SHARED["items"].extend(range(writes))
    own_writes_seen = len(SHARED["items"]) + (SHARED["writer"] == "child")
    conn.send({"inherited": inherited, "own_writes_seen": own_writes_seen})
    conn.close()


def _reset_shared() -> None:
    SHARED["writer"] = "parent"
    SHARED["items"].clear()
    SHARED["before_start"] = None


def _skip_unless_available(method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method!r} is not available on this platform")


def run_child(ctx, target, arg):
    """Run target(sender, arg) in a child; return (what it sent or None, its exit code).

    The child is always joined, and killed if it overstays CHILD_TIMEOUT_S.
    """
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(sender, arg))
    try:
        try:
            child.start()
        finally:
            sender.close()  # the child has its own copy; ours goes, started or not
        report = receiver.recv() if receiver.poll(CHILD_TIMEOUT_S) else None
    finally:
        if child.pid is not None:  # started: join it, kill it if it overstays
            child.join(CHILD_TIMEOUT_S)
            if child.is_alive():
                child.kill()
                child.join()
        receiver.close()
    return report, child.exitcode


@pytest.mark.claim("PR1")
@pytest.mark.parametrize("start_method", START_METHODS)
def test_child_process_writes_are_invisible_to_parent(benchmark, evidence, start_method):
    _skip_unless_available(start_method)
    ctx = multiprocessing.get_context(start_method)
    reports, parent_views = [], []

    def child_round():
        _reset_shared()
        SHARED["before_start"] = "token"  # a change made at run time, after import
        report, exitcode = run_child(ctx, _mutate_shared, CHILD_WRITES)
        reports.append(report)
        parent_views.append((SHARED["writer"], len(SHARED["items"]), exitcode))

    benchmark.group = "PR1 start a child that writes a global, join it"
    benchmark.pedantic(child_round, rounds=ROUNDS)
    _reset_shared()

    if any(r is None for r in reports):
        pytest.fail(f"a {start_method} child sent no report within {CHILD_TIMEOUT_S} s")
    evidence.condition(start_method=start_method, child_writes=CHILD_WRITES, rounds=ROUNDS)
    own_seen = min(r["own_writes_seen"] for r in reports)
    parent_seen = max(items + (writer != "parent") for writer, items, _ in parent_views)
    inherited = sum(r["inherited"] == "token" for r in reports)
    evidence.figure("child_exitcodes_nonzero", sum(code != 0 for *_, code in parent_views), "children")
    evidence.figure("child_inherited_parent_runtime_state", inherited, f"of {ROUNDS} children")
    evidence.note(
        "fork copies the parent's address space, so the child starts with state set at run time"
        if start_method == "fork"
        else f"a {start_method} child imports the module afresh and starts from its initial state"
    )
    evidence.support(
        "child_sees_own_writes", own_seen, ">=", CHILD_WRITES + 1, "writes",
        why="control: the child's writes took effect in the child (items plus the writer field)",
    )
    evidence.support(
        "parent_sees_child_writes", parent_seen, "==", 0, "writes",
        why="each process has its own copy of the global",
    )
    evidence.settle(benchmark, expect="holds")


def _cow_child(conn, buf: bytearray) -> None:
    """Forked child: USS/PSS before and after writing one byte to every page of `buf`."""
    me = psutil.Process()
    before = me.memory_full_info()
    t0 = time.perf_counter()
    buf[::PAGE_BYTES] = b"\x01" * len(range(0, len(buf), PAGE_BYTES))
    touch_s = time.perf_counter() - t0
    after = me.memory_full_info()
    conn.send({"uss_before": before.uss, "uss_after": after.uss, "pss_before": before.pss,
               "pss_after": after.pss, "touch_s": touch_s})
    conn.close()


@pytest.mark.claim("PR1")
@needs_linux
def test_forked_child_shares_pages_until_it_writes_them(benchmark, evidence):
    ctx = multiprocessing.get_context("fork")
    buf = bytearray(COW_BUFFER_BYTES)
    buf[::PAGE_BYTES] = b"\x02" * len(range(0, len(buf), PAGE_BYTES))  # resident before any fork
    reports = []

    def fork_and_write():
        reports.append(run_child(ctx, _cow_child, buf)[0])

    benchmark.group = "PR1 fork a child that writes every page of a buffer"
    benchmark.pedantic(fork_and_write, rounds=ROUNDS)
    parent_unchanged = buf[0] == 2 and buf[-PAGE_BYTES] == 2
    del buf

    if any(r is None for r in reports):
        pytest.fail(f"a forked child sent no report within {CHILD_TIMEOUT_S} s")
    mib = float(1 << 20)
    evidence.condition(start_method="fork", buffer_bytes=COW_BUFFER_BYTES, page_bytes=PAGE_BYTES)
    for key in ("uss_before", "uss_after", "pss_before", "pss_after"):
        evidence.figure(f"child_{key}", unit="MiB", samples=[r[key] / mib for r in reports])
    evidence.figure("child_write_every_page", unit="s", samples=[r["touch_s"] for r in reports])
    evidence.figure(
        "uss_before_over_buffer", unit="x", samples=[r["uss_before"] / COW_BUFFER_BYTES for r in reports]
    )
    evidence.figure(
        "uss_growth_over_buffer", unit="x",
        samples=[(r["uss_after"] - r["uss_before"]) / COW_BUFFER_BYTES for r in reports],
    )
    evidence.support(
        "max_uss_before_over_buffer", max(r["uss_before"] / COW_BUFFER_BYTES for r in reports), "<=",
        MAX_SHARED_USS_FRACTION, "x", why="before writing, the child's copy of the buffer is the parent's pages",
    )
    evidence.support(
        "min_uss_growth_over_buffer", min((r["uss_after"] - r["uss_before"]) / COW_BUFFER_BYTES for r in reports),
        ">=", MIN_COPIED_FRACTION, "x", why="writing a shared page gives the child a private copy of it",
    )
    evidence.support("parent_buffer_unchanged", int(parent_unchanged), "==", 1, why="the copies were the child's")
    evidence.settle(benchmark, expect="holds")


@pytest.mark.claim("TH1")
def test_thread_writes_are_visible_to_other_threads(benchmark, evidence):
    seen, same_object = [], []

    def thread_round():
        _reset_shared()
        SHARED.pop("made_by_thread", None)
        made_id = []

        def writer():
            SHARED["writer"] = "thread"
            SHARED["items"].extend(range(CHILD_WRITES))
            made = [object()]  # a new object, created in the thread ...
            SHARED["made_by_thread"] = made  # ... and stored where the main thread looks
            made_id.append(id(made))

        t = threading.Thread(target=writer)
        t.start()
        t.join()
        seen.append(len(SHARED["items"]) + (SHARED["writer"] == "thread"))
        # what the main thread reads back is the thread's object itself, not a copy (a
        # process would see no such key, or a copy with its own id)
        read_back = SHARED.pop("made_by_thread", None)
        same_object.append(bool(made_id) and read_back is not None and id(read_back) == made_id[0])

    benchmark.group = "TH1 start a thread that writes a global, join it"
    benchmark.pedantic(thread_round, rounds=ROUNDS)
    _reset_shared()

    evidence.condition(child_writes=CHILD_WRITES, rounds=ROUNDS)
    evidence.support(
        "main_thread_sees_thread_writes", min(seen), "==", CHILD_WRITES + 1, "writes",
        why="the thread wrote the main thread's own objects (items plus the writer field)",
    )
    evidence.support(
        "rounds_with_same_object", sum(same_object), "==", ROUNDS, "rounds",
        why="one address space: the object the thread created and stored is, read back by the main thread, the same object (same id())",
    )
    evidence.settle(benchmark, expect="holds")


def _run_counters(increments: int, lock: threading.Lock | None) -> int:
    """RMW_THREADS threads each add 1 `increments` times to one counter; return its final value."""
    box = [0]

    def unsafe():
        for _ in range(increments):
            value = box[0]
            time.sleep(0)  # releases the GIL between the read and the write
            box[0] = value + 1

    def locked():
        for _ in range(increments):
            with lock:
                value = box[0]
                time.sleep(0)
                box[0] = value + 1

    threads = [threading.Thread(target=locked if lock else unsafe) for _ in range(RMW_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return box[0]


@pytest.mark.claim("TH1")
def test_unsynchronised_read_modify_write_across_threads_loses_updates(benchmark, evidence):
    total = RMW_THREADS * RMW_INCREMENTS
    finals = {"unlocked": [], "locked": []}
    lock = threading.Lock()

    def setup():
        finals["locked"].append(_run_counters(RMW_INCREMENTS, lock))

    def unlocked():
        finals["unlocked"].append(_run_counters(RMW_INCREMENTS, None))

    benchmark.group = "TH1 unsynchronised read-modify-write in threads"
    benchmark.pedantic(unlocked, setup=setup, rounds=ROUNDS)

    evidence.condition(threads=RMW_THREADS, increments_per_thread=RMW_INCREMENTS, expected_total=total)
    lost = evidence.figure("lost_updates", unit="updates", samples=[total - v for v in finals["unlocked"]])
    evidence.figure("lost_fraction", lost / total, "of increments")
    evidence.support(
        "min_lost_updates_unlocked", min(total - v for v in finals["unlocked"]), ">=",
        int(MIN_LOST_FRACTION * total), "updates", why="another thread's write lands between a read and its write",
    )
    evidence.support(
        "max_lost_updates_locked", max(total - v for v in finals["locked"]), "==", 0, "updates",
        why="control: the same loop under a lock is exact",
    )
    evidence.settle(benchmark, expect="holds")
