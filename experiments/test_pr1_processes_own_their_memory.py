"""PR1: every process owns its memory; what one process changes, another does not see.

What is measured:
- isolation: the parent changes a module global, starts a child (fork, forkserver, spawn);
  the child writes to the same global and reports what it saw; after joining, the parent
  counts how many of the child's writes it can see. Also recorded: whether the child
  inherited the parent's run-time change (fork copies the address space; forkserver and
  spawn import the module afresh), and, as figures, the child's own memory before it writes:
  USS (pages only it maps), RSS and its address space (psutil), i.e. what one more process
  started from pytest by that method costs.
- copy-on-write: the parent holds a buffer whose pages are resident; a forked child reads
  its own USS (memory only it maps) and PSS from /proc/<pid>/smaps (psutil), writes one
  byte to every page of the buffer, and reads them again. The parent then checks that its
  own buffer is unchanged.

Why this method: a write the parent cannot see, and private memory that grows by the
buffer's size when the child writes, are the two faces of "owns its memory": the child got
copies. If the two processes shared memory, the parent would see every write and the child's
writes would land in pages it already shared, so its private memory would not grow.

The opposite world of the isolation check (harness.evidence.Opposite), in rounds interleaved
with the claim's (one untimed before each timed round): the same writer (the same function,
the same pipe back) run by a thread of the parent instead of a child process. A thread shares
its process's memory (TH1), so the parent sees every one of its writes. The check, judged by
the same count in both worlds, decides only when they land on opposite sides of 0.

How it is decided: the count of the child's writes the parent sees (any one refutes
isolation: a counterexample, not a noisy figure), the USS growth per round by its interval,
and the parent's buffer after all rounds. How many writes the child made, and saw itself,
is fixed by the child's own loop: a figure. The control is TH1's threads, which run the same
writes and do see them (test_th1_threads_share_memory.py), and here the opposite world.

Known traps: a forked child's USS is not zero before it writes: the interpreter's refcount
updates dirty some heap pages; that share is a figure (sharing until written is how fork
copies, not what the claim predicts). Children are always joined (forkserver/spawn too);
pipes, not multiprocessing.Queue, carry results, so no feeder thread outlives a test.
"""
from __future__ import annotations

import multiprocessing
import threading
import time

import psutil
import pytest

from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux

START_METHODS = ("fork", "forkserver", "spawn")
ROUNDS = pick(quick=3, full=10)  # isolation: each round is a counterexample hunt, no interval
COW_ROUNDS = pick(quick=6, full=10)  # the USS growth decides by its interval: 6 rounds at least
CHILD_WRITES = 100  # items the child appends to the shared list
CHILD_TIMEOUT_S = 30.0
COW_BUFFER_BYTES = pick(quick=32 << 20, full=128 << 20)
PAGE_BYTES = 4096
# The child's private memory growth on writing every page, over the buffer's size. Owning its
# memory (copies made on write) predicts 1.0; sharing it with the parent predicts 0.0.
MIN_COPIED_FRACTION = 0.5

# The state a child process mutates. Module-level, so that a forked child gets a copy of it
# and a spawned one re-creates it on import.
SHARED = {"writer": "parent", "items": [], "before_start": None}


def _mutate_shared(conn, writes: int) -> None:
    """Child process: report what it inherited and its own memory before any write, write to SHARED, report
    what it sees."""
    mem = psutil.Process().memory_full_info()
    inherited = SHARED["before_start"]
    SHARED["writer"] = "child"
    SHARED["items"].extend(range(writes))
    own_writes_seen = len(SHARED["items"]) + (SHARED["writer"] == "child")
    conn.send({"inherited": inherited, "own_writes_seen": own_writes_seen, "uss": mem.uss, "rss": mem.rss,
               "vms": mem.vms})
    conn.close()


def _reset_shared() -> None:
    SHARED["writer"] = "parent"
    SHARED["items"].clear()
    SHARED["before_start"] = None


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


def run_thread(target, arg):
    """The opposite world of run_child: target(sender, arg) in a thread of this process; (what it sent, 0)."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    thread = threading.Thread(target=target, args=(sender, arg), name="pr1-opposite-writer")
    try:
        thread.start()
        thread.join(CHILD_TIMEOUT_S)
        report = receiver.recv() if receiver.poll(0) else None
    finally:
        sender.close()  # closed by the writer already, unless it failed
        receiver.close()
    return report, 0


def isolation_rounds(benchmark, ctx) -> tuple[list[dict], list[dict]]:
    """Each round: change SHARED, run a child that writes it, look at SHARED again.

    Before each (untimed) the opposite world's round: the same writer in a thread. Returns both worlds' rounds.
    """
    rounds, thread_rounds = [], []

    def one_round(run, into, who):
        _reset_shared()
        SHARED["before_start"] = "token"  # a change made at run time, after import
        report, exitcode = run(_mutate_shared, CHILD_WRITES)
        if report is None:
            raise RuntimeError(f"a {who} sent no report within {CHILD_TIMEOUT_S} s")
        parent_seen = len(SHARED["items"]) + (SHARED["writer"] != "parent")
        _reset_shared()
        into.append(report | {"parent_seen": parent_seen, "exitcode": exitcode})

    try:
        benchmark.pedantic(
            lambda: one_round(lambda *a: run_child(ctx, *a), rounds, f"{ctx.get_start_method()} child"),
            setup=lambda: one_round(run_thread, thread_rounds, "writer thread"), rounds=ROUNDS)
    finally:
        _reset_shared()
    return rounds, thread_rounds


@pytest.mark.claim("PR1")
@pytest.mark.parametrize("start_method", START_METHODS)
def test_child_process_writes_are_invisible_to_parent(benchmark, evidence, start_method):
    if start_method not in multiprocessing.get_all_start_methods():
        evidence.not_measured(f"start method {start_method!r} is not available on this platform")
    benchmark.group = "PR1 start a child that writes a global, join it"
    rounds, thread_rounds = isolation_rounds(benchmark, multiprocessing.get_context(start_method))

    evidence.condition(start_method=start_method, rounds=ROUNDS)
    evidence.figure("child_writes_made", CHILD_WRITES + 1, "writes (items plus the writer field)")
    evidence.figure("child_saw_own_writes", min(r["own_writes_seen"] for r in rounds), "writes")
    evidence.figure("child_exitcodes_nonzero", sum(r["exitcode"] != 0 for r in rounds), "children")
    evidence.figure("child_inherited_parent_runtime_state", sum(r["inherited"] == "token" for r in rounds),
                    f"of {ROUNDS} children")
    evidence.note(
        "fork copies the parent's address space, so the child starts with state set at run time"
        if start_method == "fork"
        else f"a {start_method} child imports the module afresh and starts from its initial state"
    )
    # What one process costs in memory, read by each child before its writes (figures for the units table):
    # the memory only it maps (USS), its resident set (shared pages included) and its address space.
    for name, key in (("child_unique_memory", "uss"), ("child_resident_memory", "rss"),
                      ("child_reserved_memory", "vms")):
        evidence.figure(name, unit="bytes", samples=[r[key] for r in rounds])
    evidence.figure("parent_sees_child_writes_opposite", sum(r["parent_seen"] for r in thread_rounds), "writes")
    # Owning its memory predicts 0 writes seen; shared memory predicts all of them. One seen
    # write is already a counterexample, so the threshold is the claim's own value.
    evidence.support("parent_sees_child_writes", value=sum(r["parent_seen"] for r in rounds), op="==", threshold=0,
                     unit="writes",
                     opposite=Opposite("the same writes made by a thread of the parent, interleaved rounds",
                                       value=sum(r["parent_seen"] for r in thread_rounds)),
                     why="each process has its own copy of the global")
    evidence.settle(benchmark)


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


def cow_rounds(benchmark) -> tuple[list[dict], bool]:
    """Fork COW_ROUNDS children that each write every page; return their reports and whether
    the parent's buffer came through unchanged."""
    ctx = multiprocessing.get_context("fork")
    buf = bytearray(COW_BUFFER_BYTES)
    buf[::PAGE_BYTES] = b"\x02" * len(range(0, len(buf), PAGE_BYTES))  # resident before any fork
    reports = []

    def fork_and_write():
        report, _ = run_child(ctx, _cow_child, buf)
        if report is None:
            raise RuntimeError(f"a forked child sent no report within {CHILD_TIMEOUT_S} s")
        reports.append(report)

    benchmark.pedantic(fork_and_write, rounds=COW_ROUNDS)
    return reports, buf.count(b"\x02") == len(range(0, len(buf), PAGE_BYTES))


@pytest.mark.claim("PR1")
@needs_linux
def test_forked_child_shares_pages_until_it_writes_them(benchmark, evidence):
    benchmark.group = "PR1 fork a child that writes every page of a buffer"
    reports, parent_unchanged = cow_rounds(benchmark)

    mib = float(1 << 20)
    evidence.condition(start_method="fork", buffer_bytes=COW_BUFFER_BYTES, page_bytes=PAGE_BYTES)
    for key in ("uss_before", "uss_after", "pss_before", "pss_after"):
        evidence.figure(f"child_{key}", unit="MiB", samples=[r[key] / mib for r in reports])
    evidence.figure("child_write_every_page", unit="s", samples=[r["touch_s"] for r in reports])
    evidence.figure("buffer_size", COW_BUFFER_BYTES, "B")
    evidence.figure("uss_before_over_buffer", unit="x", samples=[r["uss_before"] / COW_BUFFER_BYTES for r in reports])
    evidence.note("before writing, the child's private memory is a small share of the buffer: fork shares "
                  "pages until one side writes them (copy-on-write), which is how the copy is made, not a check")
    evidence.support(
        "uss_growth_over_buffer", op=">=", threshold=MIN_COPIED_FRACTION, unit="x",
        samples=[(r["uss_after"] - r["uss_before"]) / COW_BUFFER_BYTES for r in reports],
        why="writing a page it shared gives the child a private copy of it",
    )
    # The parent's pages after all rounds: owning predicts all still 0x02; sharing, none.
    evidence.support("parent_buffer_unchanged", value=int(parent_unchanged), op="==", threshold=1,
                     why="the children's writes went to their own copies")
    evidence.settle(benchmark)
