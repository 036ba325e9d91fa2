"""harness.aio.bench_async times coroutines inside their loop, as pyperf's bench_async_func does.

The second test is the benchmark behind the README's overhead figure: the harness and pyperf
time the same empty coroutine; if the cost of entering the loop leaked into the harness's
figure, the ratio would be in the hundreds, not near 1.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import aio, optional, timing
from harness.subproc import child_env

ROOT = Path(__file__).resolve().parent.parent
SLEEP_S = 0.005
BATCH = 4
EMPTY_BATCH = 100_000
PYPERF_VALUES = 5
MAX_OVERHEAD_RATIO = 3.0  # harness / pyperf on an empty await; a leaked run_until_complete gives ~100+


@pytest.fixture(params=[pytest.param(k, marks=optional.needs(k) if k != "asyncio" else ()) for k in aio.LOOPS])
def loop(request):
    event_loop = aio.new_loop(request.param)
    yield event_loop
    aio.close_loop(event_loop)


def test_virtual_clock_moves_only_when_advanced_and_ends_with_its_block():
    with timing.virtual():
        start = timing.clock()
        timing.advance(0.25)
        assert timing.clock() - start == 0.25
        with pytest.raises(ValueError):
            timing.advance(-1.0)
    a = timing.clock()
    assert timing.clock() > a  # plain perf_counter again
    with pytest.raises(RuntimeError):
        timing.advance(1.0)


def test_bench_async_reports_seconds_per_await_not_per_batch(benchmark, loop):
    aio.bench_async(benchmark, loop, asyncio.sleep, SLEEP_S, rounds=3, batch=BATCH, warmup_rounds=0)
    per_await = benchmark.stats.stats.median
    # Per await predicts SLEEP_S, per batch BATCH * SLEEP_S: the bound sits halfway, so a late wake-up on a busy
    # machine (a sleep overshooting by a few ms) cannot pass for the wrong unit, nor fail the right one.
    assert SLEEP_S <= per_await < (1 + BATCH) / 2 * SLEEP_S, f"{per_await} s per await; a batch is {BATCH * SLEEP_S} s"


async def empty():
    pass


def pyperf_empty_await(loop_kind: str, tmp_path) -> float:
    out = tmp_path / "pyperf.json"
    cmd = subprocess_module_command(loop_kind, out)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=child_env(), cwd=ROOT)
    assert proc.returncode == 0, f"pyperf failed: {proc.stderr[-2000:]}"
    data = json.loads(out.read_text())
    values = [v for run in data["benchmarks"][0]["runs"] for v in run.get("values", [])]
    return sorted(values)[len(values) // 2]


def subprocess_module_command(loop_kind: str, out) -> list[str]:
    return [sys.executable, "-m", "harness.children.pyperf_empty_await", "--loop-kind", loop_kind,
            "--values", str(PYPERF_VALUES), "--loops", str(EMPTY_BATCH), "--quiet", "--inherit-environ=PYTHONPATH",
            "-o", str(out)]


def test_harness_times_an_empty_await_like_pyperf(benchmark, loop, tmp_path, request):
    kind = request.node.callspec.params["loop"]
    aio.bench_async(benchmark, loop, empty, rounds=PYPERF_VALUES, batch=EMPTY_BATCH)
    ours = benchmark.stats.stats.median
    theirs = pyperf_empty_await(kind, tmp_path)
    ratio = ours / theirs
    benchmark.extra_info.update({"harness_s": ours, "pyperf_s": theirs, "ratio": ratio, "loop": kind})
    print(f"\n{kind}: harness {ours * 1e9:.1f} ns, pyperf {theirs * 1e9:.1f} ns per await, ratio {ratio:.2f}")
    assert ratio < MAX_OVERHEAD_RATIO, f"harness {ours:.3g} s vs pyperf {theirs:.3g} s per empty await"
