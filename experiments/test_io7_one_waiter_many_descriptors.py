"""IO7: one waiter (select, poll or epoll) watches many descriptors at once (expected holds).

- One thread with a ``selectors.DefaultSelector`` echoes on SERVE_CONNECTIONS socketpairs;
  every message sent must come back.
- One wait with one ready descriptor among N idle ones, for select.select, select.poll and
  select.epoll called directly: one part per waiter. Every round times a batch of
  back-to-back zero-timeout waits on the N-descriptor set and on a BASELINE_N set, both built
  before the clock, so each round gives one same-noise sample of
  growth = cost(N) / cost(BASELINE_N). The part decides at its waiter's largest N (the
  largest of N_FDS whose descriptors fit: FD_SETSIZE for select, the hard RLIMIT_NOFILE for
  all; GROWTH_N or more), by the interval of the growth's per-round median: epoll keeps a
  ready list, so the claim predicts it stays flat (≈ 1), while select and poll scan every
  descriptor on every call and grow with N. The smaller N are figures of the same part
  (``*_at_<N>``), MIN_ROUNDS rounds each, and so is the count of ready descriptors each wait
  reports (one, by construction of the sets: a check on it could not have read otherwise).

The opposite world: the two kinds of waiter are each other's. At the deciding N, every
round times the part's waiter and the other kind on the very same descriptor sets, in
alternating order (ABAB): select and poll are judged against epoll on the same N
descriptors, epoll against poll, by the same check and threshold (harness.evidence.Opposite).
A scan that did not grow, or a ready list that did, lands both worlds on one side of the
threshold and the part is not discriminating here. Sampling stops once both intervals are
decided. Each world's timed pair of batches follows one untimed pair, so that neither pays
for the caches the other's waits evicted: without it, epoll's first batch of waits after a
poll of every socket ran cold, and its growth read as if it scanned too.

The per-descriptor cost (a figure, ns) is (cost(N) - cost(BASELINE_N)) / (N - BASELINE_N)
within each round, from batched back-to-back waits: the batch keeps perf_counter's own
overhead out of a microsecond-scale call, and the baseline's subtraction removes the call's
fixed cost, so the figure is the scan alone, in the warm steady state a server's loop runs
in. It depends on the process: pytest runs other threads (a faulthandler watchdog among
them), and with a shared descriptor table the kernel takes and drops a reference on every
descriptor it polls. So for poll it is measured twice, in pytest's process (threads recorded
as a condition) and by the same code (harness.waiters) in a fresh single-threaded child; a
single-threaded event loop pays the latter. It also depends on the kind of file (AF_UNIX
socket ends here; pipes cost less) and on N (the sockets' kernel structures outgrow the
caches, so the cost per descriptor rises with N).

select's fd_set holds descriptors *numbered* below FD_SETSIZE: a descriptor numbered
FD_SETSIZE or more makes select.select raise ValueError, whatever the count. That is
recorded as a figure and a note (a fact of the C library), never as support; select is
timed only at N whose descriptors all fit below it.

Traps: the ready descriptor keeps one unread byte so it stays ready (level-triggered) for
every wait; waits use timeout 0 so a wrong setup cannot hang. Both ends of a silent
socketpair are idle descriptors, so N costs N/2 pairs; RLIMIT_NOFILE is raised within the
hard limit and restored afterwards.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import select
import selectors
import socket
import threading

import pytest

from harness import stats
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux
from harness.stats import sample_rounds
from harness.subproc import run_module
from harness.timing import replay
from harness.waiters import KINDS, descriptor_set, paired_batches

pytestmark = needs_linux  # epoll, /proc/self/task

SERVE_CONNECTIONS = pick(quick=500, full=2000)
SERVE_ROUNDS = pick(quick=5, full=10)
MESSAGE = b"ping-0123456789"
N_FDS = pick(quick=(10, 100, 300, 1024, 4000), full=(10, 100, 300, 1024, 4000, 10000))
FD_SETSIZE = 1024  # glibc's fd_set size, the limit CPython's select.select enforces
SELECT_HEADROOM = 128  # descriptors the process holds besides the sets: select is timed only where all fit
BASELINE_N = 10
BATCH_FD_VISITS = 4000  # waits per timed batch = this // (N + 1), at least MIN_BATCH_CALLS
MIN_BATCH_CALLS = 8  # so that no batch is one cold call with perf_counter's overhead in it
MIN_ROUNDS = 15
MAX_ROUNDS = pick(quick=60, full=200)  # rounds are added while a growth's interval straddles its threshold
GROWTH_N = 300  # from here on (30x the baseline's descriptors) a linear scan stands far above the call overhead
# A ready list keeps the cost flat (growth ≈ 1); a scan of every descriptor grows with N, many times
# over at N >= GROWTH_N. 2 sits between, for both directions.
GROWTH_THRESHOLD = 2.0
CHILD_TIMEOUT_S = 60  # the single-threaded per-descriptor measurement (poll, N >= GROWTH_N)
# The other kind of waiter, timed on the same descriptors at the deciding N: a scan against a ready list.
OPPOSITE = {"select": "epoll", "poll": "epoll", "epoll": "poll"}
SCANS = {"select": True, "poll": True, "epoll": False}  # whether the waiter scans every descriptor per call
HARD_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def needed_fds(n_fds: int) -> int:
    """The soft RLIMIT_NOFILE a part at n_fds runs under: both sets plus headroom."""
    return n_fds + BASELINE_N + SELECT_HEADROOM * 2


def fits(kind: str, n_fds: int) -> bool:
    """Whether `kind` can be timed on n_fds descriptors here (FD_SETSIZE for select, the hard limit for all)."""
    if kind == "select" and n_fds + BASELINE_N + SELECT_HEADROOM >= FD_SETSIZE:
        return False
    return HARD_NOFILE == resource.RLIM_INFINITY or needed_fds(n_fds) <= HARD_NOFILE


def deciding_n(kind: str) -> int:
    """The N a waiter's part decides at: its largest N that fits, GROWTH_N at least (unmeasurable if none fits)."""
    return max([n for n in N_FDS if fits(kind, n)] + [GROWTH_N])


CASES = [(kind, deciding_n(kind)) for kind in KINDS]


@contextlib.contextmanager
def fd_limit(needed: int, evidence):
    """Raise RLIMIT_NOFILE's soft limit to `needed` (within the hard limit) and restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard if hard != resource.RLIM_INFINITY else needed
    if needed > ceiling:
        evidence.figure("rlimit_nofile_hard", hard, "fds")
        evidence.not_measured(f"needs {needed} open descriptors; the hard RLIMIT_NOFILE here is {hard}")
    if needed > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def select_refusal(evidence) -> None:
    """Record that select.select refuses a descriptor numbered FD_SETSIZE or more (a fact, not support)."""
    a, b = socket.socketpair()
    with fd_limit(FD_SETSIZE + SELECT_HEADROOM, evidence), a, b:
        high = fcntl.fcntl(a.fileno(), fcntl.F_DUPFD, FD_SETSIZE)  # the lowest free number >= FD_SETSIZE
        try:
            select.select([high], [], [], 0)
            evidence.figure("select_refuses_fd_numbered", "no")
        except ValueError as exc:
            evidence.figure("select_refuses_fd_numbered", high, "fd")
            evidence.note(f"select.select on descriptor number {high} raised ValueError ({exc}): fd_set holds "
                          f"numbers below FD_SETSIZE, so a set of {FD_SETSIZE} or more descriptors always fails")
        finally:
            os.close(high)


def batch_calls(n_fds: int) -> int:
    """Waits per timed batch, the same for the N set and the baseline set (equal overheads)."""
    return max(MIN_BATCH_CALLS, BATCH_FD_VISITS // (n_fds + 1))


def per_fd_cost_single_threaded(kind: str, n_fds: int) -> list[float]:
    """Seconds per descriptor from the same batched waits in a fresh single-threaded child."""
    outcome = run_module("harness.children.wait_cost", kind, n_fds, BASELINE_N, batch_calls(n_fds), MIN_ROUNDS,
                         timeout=CHILD_TIMEOUT_S)
    if outcome.returncode != 0:
        raise RuntimeError(f"wait_cost child failed (exit {outcome.returncode}): {outcome.stderr[-2000:]}")
    result = outcome.result()
    if result["threads"] != 1:
        raise RuntimeError(f"the wait_cost child ran {result['threads']} threads, not one")
    return [(c - b) / (n_fds - BASELINE_N) for c, b in result["rounds"]]


@contextlib.contextmanager
def waiters_on(kinds: tuple[str, ...], n_fds: int, evidence):
    """One N set and one baseline set, and per waiter in `kinds` a round function timing it on both.

    Yields ({kind: round function -> (cost, base cost, ready, base ready)}, highest descriptor);
    every waiter of `kinds` watches the very same descriptors. Closes everything on exit.
    """
    with fd_limit(needed_fds(n_fds), evidence), contextlib.ExitStack() as stack:
        base_fds = stack.enter_context(descriptor_set(BASELINE_N))
        fds = stack.enter_context(descriptor_set(n_fds))
        if "select" in kinds and max(fds) >= FD_SETSIZE:
            evidence.figure("highest_descriptor", max(fds), "fd")
            evidence.not_measured(f"this process already holds descriptors up to {max(fds)}: over FD_SETSIZE")
        yield {kind: paired_batches(kind, fds, base_fds, batch_calls(n_fds), stack) for kind in kinds}, max(fds)


def figure_rounds(kind: str, n_fds: int, evidence) -> list[tuple]:
    """MIN_ROUNDS rounds of one waiter at a smaller N: figures only, nothing to decide, no rounds added."""
    with waiters_on((kind,), n_fds, evidence) as (rounds_of, _):
        return sample_rounds(rounds_of[kind], min_rounds=MIN_ROUNDS, max_rounds=MIN_ROUNDS)


def growth(rounds) -> list[float]:
    return [c / b for c, b, *_ in rounds]


def deciding_rounds(kind: str, n_fds: int, evidence) -> tuple[list[dict], int]:
    """Rounds of the waiter and its opposite on the same sets, alternating which goes first, until both decide."""
    worlds = (kind, OPPOSITE[kind])
    op = ">=" if SCANS[kind] else "<="
    made: list = []
    with waiters_on(worlds, n_fds, evidence) as (rounds_of, highest):
        def one_round():
            order = worlds if len(made) % 2 == 0 else worlds[::-1]
            made.append(None)
            timed = {}
            for world in order:
                rounds_of[world]()  # untimed: the caches the other world's waits evicted are refilled first
                timed[world] = rounds_of[world]()
            return timed

        def done(rs):
            return all(stats.decided(growth([r[w] for r in rs]), op, GROWTH_THRESHOLD) for w in worlds)

        return sample_rounds(one_round, min_rounds=MIN_ROUNDS, max_rounds=MAX_ROUNDS, done=done), highest


def record_figures(evidence, rounds: list[tuple], n_fds: int, suffix: str) -> None:
    """The figures of one N: wait costs, cost per descriptor, the ready count, growth (unless it is checked)."""
    evidence.figure(f"wait_cost{suffix}", unit="s (batched back-to-back waits)", samples=[c for c, *_ in rounds])
    evidence.figure(f"baseline_wait_cost{suffix}", unit="s (batched)", samples=[b for _, b, *_ in rounds])
    if n_fds > BASELINE_N:
        evidence.figure(f"per_fd_cost{suffix}",
                        unit="s (per descriptor, batched waits)",
                        samples=[(c - b) / (n_fds - BASELINE_N) for c, b, *_ in rounds])
    # One descriptor is made ready, so one is reported by construction: a figure (a scan that missed it
    # would read 0), never a check that could not have read otherwise.
    evidence.figure(f"ready_reported_per_wait{suffix}", min(min(r, br) for *_, r, br in rounds), "fds")
    if suffix:
        evidence.figure(f"growth_vs_baseline{suffix}", unit="x", samples=growth(rounds))


@pytest.mark.claim("IO7")
@pytest.mark.parametrize(("selector", "n_fds"), CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_one_wait_finds_the_ready_descriptor_among_n(benchmark, evidence, selector, n_fds):
    opposite = OPPOSITE[selector]
    smaller = [n for n in N_FDS if n < n_fds and fits(selector, n)]
    left_out = [n for n in N_FDS if n > n_fds]
    evidence.condition(selector=selector, n_fds=n_fds, baseline_n=BASELINE_N, smaller_n_fds=smaller,
                       opposite_selector=opposite, threads_in_process=len(os.listdir("/proc/self/task")))
    if left_out:
        evidence.note(f"{selector} is not timed at N = {', '.join(map(str, left_out))}: the descriptors would not "
                      f"fit " + ("below FD_SETSIZE" if selector == "select" else
                                 f"the hard RLIMIT_NOFILE of {HARD_NOFILE}"))
    for n in smaller:
        record_figures(evidence, figure_rounds(selector, n, evidence), n, f"_at_{n}")
        if selector == "poll" and n >= GROWTH_N:
            evidence.figure(f"per_fd_cost_single_threaded_at_{n}",
                            unit="s (per descriptor, single-threaded child)",
                            samples=per_fd_cost_single_threaded(selector, n))
    rounds, highest = deciding_rounds(selector, n_fds, evidence)
    mine, other = [r[selector] for r in rounds], [r[opposite] for r in rounds]
    benchmark.group = "IO7 one wait, one ready fd among N"
    replay(benchmark, [cost for cost, *_ in mine])

    evidence.figure("highest_descriptor", highest, "fd")
    evidence.figure("watched_descriptors", n_fds, "fds")  # the deciding N, for the catalogue's prose
    record_figures(evidence, mine, n_fds, "")
    evidence.figure("ready_reported_per_wait_opposite", min(min(r, br) for *_, r, br in other), "fds")
    if selector == "poll":
        evidence.figure("per_fd_cost_single_threaded", unit="s (per descriptor, single-threaded child)",
                        samples=per_fd_cost_single_threaded(selector, n_fds))
    if selector == "select":
        select_refusal(evidence)
    label = f"{opposite} on the same {n_fds} descriptors, interleaved rounds"
    if SCANS[selector]:
        evidence.support("growth_vs_baseline", op=">=", threshold=GROWTH_THRESHOLD, unit="x", samples=growth(mine),
                         opposite=Opposite(label, samples=growth(other)),
                         why=f"{selector} scans every descriptor on every call: cost grows with N "
                             f"(epoll's ready list, the opposite world, stays flat)")
    else:
        evidence.support("growth_vs_baseline", op="<=", threshold=GROWTH_THRESHOLD, unit="x", samples=growth(mine),
                         opposite=Opposite(label, samples=growth(other)),
                         why=f"epoll keeps a ready list: cost at N={n_fds} vs N={BASELINE_N} stays flat "
                             f"(poll's scan, the opposite world, grows)")
    evidence.settle(benchmark)


def _echo_server(server_ends, stop, handled):
    """Echo every message on server_ends from this one thread until `stop` is readable."""
    with selectors.DefaultSelector() as sel:
        for s in server_ends:
            sel.register(s, selectors.EVENT_READ)
        sel.register(stop, selectors.EVENT_READ)
        handled["selector"] = type(sel).__name__
        while True:
            for key, _ in sel.select():
                if key.fileobj is stop:
                    return
                data = key.fileobj.recv(4096)
                if data:
                    key.fileobj.sendall(data)
                    handled["threads"].add(threading.get_ident())


@pytest.mark.claim("IO7")
def test_one_thread_with_a_selector_serves_n_connections(benchmark, evidence):
    answered = {"sent": 0, "answered": 0}
    handled = {"selector": "", "threads": set()}
    with fd_limit(2 * SERVE_CONNECTIONS + 256, evidence), contextlib.ExitStack() as stack:
        pairs = []
        stack.callback(lambda: [s.close() for pair in pairs for s in pair])
        pairs.extend(socket.socketpair() for _ in range(SERVE_CONNECTIONS))
        stop_tx, stop_rx = socket.socketpair()
        pairs.append((stop_tx, stop_rx))
        clients = [a for a, _ in pairs[:-1]]
        for c in clients:
            c.settimeout(10)
        server = threading.Thread(target=_echo_server, args=([b for _, b in pairs[:-1]], stop_rx, handled),
                                  name="io7-echo-server")
        server.start()
        stack.callback(server.join)
        stack.callback(stop_tx.send, b"stop")

        def one_round():
            for c in clients:
                c.sendall(MESSAGE)
                answered["sent"] += 1
            for c in clients:
                got = b""
                while len(got) < len(MESSAGE):
                    got += c.recv(len(MESSAGE) - len(got))
                answered["answered"] += got == MESSAGE

        benchmark.group = "IO7 one selector thread serves N connections"
        benchmark.pedantic(one_round, rounds=SERVE_ROUNDS, warmup_rounds=1)

    evidence.figure("server_selector", handled["selector"])
    evidence.condition(connections=SERVE_CONNECTIONS)
    evidence.figure("messages_per_round", SERVE_CONNECTIONS, unit="messages")
    evidence.figure("round_time", unit="s", samples=benchmark.stats.stats.data)
    evidence.figure("server_threads", len(handled["threads"]), "threads")  # one by construction
    evidence.support("answered_fraction", value=answered["answered"] / answered["sent"], op="==", threshold=1.0,
                     why=f"{answered['sent']} messages over {SERVE_CONNECTIONS} connections, all echoed")
    evidence.settle(benchmark)
