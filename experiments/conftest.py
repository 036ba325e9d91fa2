"""Fixtures every experiment shares: claim tagging, evidence, event loops, the leak guard.

- ``@pytest.mark.claim("TH4")`` tags a test with its claim; ``-k TH4`` then selects it.
- ``evidence`` collects figures and checks and writes them into the benchmark JSON.
- ``loop`` runs a test once on asyncio and once on uvloop (ids read as the table's rows);
  ``socket_pair`` is a connected AF_UNIX pair, closed afterwards.
- An autouse guard fails any test that leaves a thread, child process or socket behind.
"""
from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time

import psutil
import pytest

from harness import aio, catalogue
from harness.evidence import Evidence, combine, module_settings

CLAIMS = catalogue.load()
LEAK_GRACE_S = 3.0  # how long a finished test's threads and children get to exit by themselves
_RECORDS = pytest.StashKey[list]()
_OUTCOME = pytest.StashKey[dict]()


def pytest_configure(config):
    config.stash[_RECORDS] = []


def claim_of(item) -> str | None:
    marker = item.get_closest_marker("claim")
    return marker.args[0] if marker and marker.args else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "experiments" not in item.path.parts:
            continue
        claim_id = claim_of(item)
        if claim_id is None:
            raise pytest.UsageError(f"{item.nodeid}: every experiment needs @pytest.mark.claim(ID)")
        if claim_id not in CLAIMS:
            raise pytest.UsageError(f"{item.nodeid}: claim {claim_id!r} is not in catalogue.toml")
        item.extra_keyword_matches.add(claim_id)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_OUTCOME, {})[report.when] = report
    return report


@pytest.fixture
def evidence(request):
    """The claim's evidence for this test; call ``evidence.settle(benchmark)`` at the end."""
    claim_id = claim_of(request.node)
    if claim_id is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `evidence` without @pytest.mark.claim(ID)")
    ev = Evidence(CLAIMS[claim_id], part=request.node.name, settings=module_settings(request.module))
    yield ev
    call = request.node.stash.get(_OUTCOME, {}).get("call")
    if call is not None and call.passed and not ev.settled:
        pytest.fail(f"{request.node.nodeid} measured but never settled its verdict", pytrace=False)
    if ev.settled:
        request.config.stash[_RECORDS].append(ev.record())


@pytest.fixture
def socket_pair():
    """A connected (writer, reader) AF_UNIX stream pair, blocking, closed after the test."""
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(params=aio.LOOPS)
def loop(request):
    """A fresh event loop of each kind, made outside any timer and closed afterwards."""
    event_loop = aio.new_loop(request.param)
    yield event_loop
    aio.close_loop(event_loop)


def _mp_helper(proc: psutil.Process) -> bool:
    """multiprocessing's forkserver and resource tracker live for the whole session by design."""
    try:
        return any("from multiprocessing." in part for part in proc.cmdline())
    except psutil.Error:
        return True


def _sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"fd {fd} {target}")
    return found


def _leftovers(threads_before, children_before, sockets_before) -> list[str]:
    me = psutil.Process()
    threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    children = [
        p for p in me.children(recursive=True) if p.pid not in children_before and not _mp_helper(p)
    ]
    children = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    sockets = _sockets() - sockets_before
    found = [f"thread {t.name}" for t in threads]
    found += [f"child pid {p.pid} ({' '.join(p.cmdline())[:80]})" for p in children]
    found += [f"socket {s}" for s in sorted(sockets)]
    return found


@pytest.fixture(autouse=True)
def leak_guard(request):
    """Fail the test if it leaves a thread, a child process or a socket behind."""
    if not os.path.isdir("/proc/self/fd"):
        yield
        return
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    sockets_before = _sockets()
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        found = _leftovers(threads_before, children_before, sockets_before)
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if found:
        pytest.fail(f"{request.node.nodeid} left behind: {'; '.join(found)}", pytrace=False)


def pytest_sessionfinish(session):
    """Stop multiprocessing's session-long helpers, then make sure no child outlives pytest."""
    for module, attr in (("forkserver", "_forkserver"), ("resource_tracker", "_resource_tracker")):
        helper = getattr(getattr(multiprocessing, module, None), attr, None)
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            try:
                stop()
            except Exception:  # a helper that is already gone needs no stopping
                pass
    children = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(children, timeout=LEAK_GRACE_S)
    if alive:
        for proc in alive:
            proc.kill()
        names = ", ".join(f"pid {p.pid}" for p in alive)
        session.config.get_terminal_writer().line(f"ERROR: child processes outlived the session and were killed: {names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    records = config.stash.get(_RECORDS, [])
    if not records:
        return
    by_claim: dict[str, list[str]] = {}
    for rec in records:
        by_claim.setdefault(rec["claim"], []).append(rec["verdict"])
    terminalreporter.section("claim verdicts (this run)")
    for claim_id in CLAIMS:
        if claim_id not in by_claim:
            continue
        verdict = combine(by_claim[claim_id])
        expected = CLAIMS[claim_id].expected
        flag = "" if verdict == expected else f"   <-- catalogue expects {expected}"
        parts = len(by_claim[claim_id])
        terminalreporter.write_line(f"{claim_id:5} {verdict:18} ({parts} part{'s' * (parts != 1)}){flag}")
