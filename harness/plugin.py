"""The suite's pytest plugin (registered by the root conftest.py): claim tagging, evidence,
event loops, the leak guard, the run's record and its summary.

- ``@pytest.mark.claim("TH4")`` tags a test with its claim; ``-k TH4`` then selects it.
- ``evidence`` collects figures and checks and writes them into the benchmark JSON.
- Every skipped experiment is recorded with its claim and reason (``not_measured`` in the
  run's JSON, which is written even when nothing else ran), and the run's environment key
  goes into the JSON too: a claim that could not be measured never vanishes.
- ``loop`` runs a test once on asyncio and once on uvloop (ids read as the table's rows);
  ``socket_pair`` is a connected AF_UNIX pair, closed afterwards.
- An autouse guard fails any experiment (a test under experiments/) that leaves a thread,
  child process or socket behind; the project's own tests in tests/ are not guarded.
"""
from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time

import psutil
import pytest

from harness import aio, catalogue, environment, optional, probes, record, scale
from harness.evidence import Evidence, module_settings

CLAIMS = catalogue.load()
LEAK_GRACE_S = 3.0  # how long a finished test's threads and children get to exit by themselves
_RECORDS = pytest.StashKey[list]()  # settled evidence of this run
_SKIPS = pytest.StashKey[dict]()  # nodeid -> not-measured record
_SELECTED = pytest.StashKey[list]()  # claim IDs of the experiments selected for this run
_OUTCOME = pytest.StashKey[dict]()


def pytest_configure(config):
    config.stash[_RECORDS] = []
    config.stash[_SKIPS] = {}
    config.stash[_SELECTED] = []


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


def pytest_collection_finish(session):
    selected = {claim_of(item) for item in session.items if "experiments" in item.path.parts}
    session.config.stash[_SELECTED] = [cid for cid in CLAIMS if cid in selected]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_OUTCOME, {})[report.when] = report
    claim_id = claim_of(item)
    if report.skipped and claim_id is not None and "experiments" in item.path.parts:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        item.config.stash[_SKIPS][item.nodeid] = record.to_json(record.NotMeasured(
            claim=claim_id, part=item.name, nodeid=item.nodeid, reason=reason.removeprefix("Skipped: ")))
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
    skip = request.config.stash[_SKIPS].get(request.node.nodeid)
    if skip is not None and ev.not_measured_reason:
        skip["evidence"] = ev.record()  # the figures that showed it could not be measured


@pytest.fixture
def socket_pair():
    """A connected (writer, reader) AF_UNIX stream pair, blocking, closed after the test."""
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(params=[pytest.param(kind, marks=optional.needs(kind) if kind != "asyncio" else ())
                        for kind in aio.LOOPS])
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
    return {f"fd {fd} {target}" for fd, target in probes.open_descriptors().items() if target.startswith("socket:")}


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
    """Fail an experiment if it leaves a thread, a child process or a socket behind."""
    if "experiments" not in request.node.path.parts or not os.path.isdir("/proc/self/fd"):
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


def run_records(config) -> tuple[list[dict], list[dict]]:
    """This run's settled evidence, and its not-measured parts (skips, with their reasons)."""
    return config.stash.get(_RECORDS, []), list(config.stash.get(_SKIPS, {}).values())


def claim_states(config) -> dict[str, tuple[str, list[dict], list[dict]]]:
    """Per selected claim: its combined verdict, its parts' records, its not-measured parts."""
    records, skips = run_records(config)
    states = {}
    for claim_id in config.stash.get(_SELECTED, []):
        parts = [r for r in records if r["claim"] == claim_id]
        missing = [s for s in skips if s["claim"] == claim_id]
        verdict = record.claim_verdict(parts, missing)
        states[claim_id] = (verdict, parts, missing)
    return states


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Every run's JSON carries its format, its environment key and the parts it could not measure."""
    output_json["suite_format"] = record.SUITE_FORMAT
    output_json["scale"] = scale.current()  # a full-scale run is its own column (reporting/runs.py)
    output_json["environment"] = environment.key(gil_enabled_at_end=environment.gil_enabled())
    output_json["not_measured"] = run_records(config)[1]
    output_json["claims_selected"] = config.stash.get(_SELECTED, [])


def pytest_sessionfinish(session):
    """Stop multiprocessing's session-long helpers, then make sure no child outlives pytest.

    Also: when every experiment of the run skipped, pytest-benchmark writes no JSON at all;
    the run is then saved here, so that its not-measured parts are still on record.
    """
    for module, attr in (("forkserver", "_forkserver"), ("resource_tracker", "_resource_tracker")):
        helper = getattr(getattr(multiprocessing, module, None), attr, None)
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            try:
                stop()
            except Exception:  # a helper that is already gone needs no stopping
                pass
    _save_run_without_benchmarks(session.config)
    children = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(children, timeout=LEAK_GRACE_S)
    if alive:
        for proc in alive:
            proc.kill()
        names = ", ".join(f"pid {p.pid}" for p in alive)
        session.config.get_terminal_writer().line(
            f"ERROR: child processes outlived the session and were killed: {names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _save_run_without_benchmarks(config) -> None:
    # The one private access to pytest-benchmark: its session object (config._benchmarksession)
    # is the only way to reach its storage, save options and machine info. It offers no hook or
    # public API for writing a run that has no benchmarks, and a run whose every experiment was
    # skipped must still be saved with its not-measured parts.
    bs = getattr(config, "_benchmarksession", None)
    save = bs and (bs.save or bs.autosave)
    if not save or bs.benchmarks or bs.disabled or not config.stash.get(_SKIPS, {}):
        return
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    config.hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    output_json = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=[], include_data=bs.save_data, machine_info=bs.get_machine_info(),
        commit_info=commit_info,
    )
    config.hook.pytest_benchmark_update_json(config=config, benchmarks=[], output_json=output_json)
    bs.storage.save(output_json, save)


def pytest_terminal_summary(terminalreporter, config):
    states = claim_states(config)
    if not states or config.option.collectonly:
        return
    traits = environment.traits()
    terminalreporter.section(f"claim verdicts (this run, {environment.label(environment.key())})")
    for claim_id, (verdict, parts, missing) in states.items():
        expected = CLAIMS[claim_id].expected_for(traits)
        line = f"{claim_id:5} {catalogue.label(verdict):18} ({len(parts)} measured, {len(missing)} not measured)"
        if verdict in catalogue.DECIDED and verdict != expected:
            line += f"   <-- catalogue expects {expected}"
        terminalreporter.write_line(line)
        # Every undecided part is listed, even where the claim was decided by its other parts.
        for part in parts:
            for check in part["checks"]:
                if check["passed"] is None:
                    terminalreporter.write_line(f"      undecided: {part['part']}: {undecided_why(check)}")
        for skip in missing:
            terminalreporter.write_line(f"      not measured: {skip['part']}: {skip['reason']}")


def undecided_why(check: dict) -> str:
    """Why a check is open: its own interval straddles the threshold, or its opposite world's does."""
    other = check.get("opposite") or {}
    if other.get("passed", True) is None and other.get("interval"):
        lo, hi = other["interval"]
        return (f"{check['name']}: its opposite world ({other['label']}) interval {lo:.4g}-{hi:.4g} straddles "
                f"{check['op']} {check['threshold']} (n={other['n']})")
    lo, hi = check["interval"] or (check["value"], check["value"])
    return f"{check['name']} interval {lo:.4g}-{hi:.4g} straddles {check['op']} {check['threshold']} (n={check['n']})"
