"""IO3: "copying data between kernel and user space costs no CPU" (expected refuted).

What is measured: readinto() of a page-cached file (harness.files) into a user buffer, at
several sizes, each read in a fresh thread (harness.threadcpu) so that thread alone is
accounted. Two figures per round decide, each by the interval of its per-round median:

- CPU share = thread CPU / the time the thread was not waiting for a CPU (wall minus its
  run-queue wait from /proc/thread-self/schedstat). A CPU-free copy (a DMA engine moving the
  bytes while the caller sleeps) predicts ≈ 0; a CPU doing the copy predicts ≈ 1.
- CPU growth = CPU of the largest read / CPU of the smallest, in the same round. A CPU-free
  copy predicts no growth (≈ 1); a copy done by the CPU grows with the bytes, in the
  ratio of the sizes.
The least-squares slope (CPU s per GB) and r² over the sizes are figures. The control, in
every round: a fresh thread that only sleeps, accounted the same way, shows what the CPU
share reads when the thread waits without the CPU (≈ 0).

Why CPU share and not CPU / wall: on a shared machine the wall includes time spent waiting
for a CPU, so CPU/wall falls far below 1 under load although copying is not free.
Traps: only a device's DMA leg is CPU-free, and there is no real device on this VM to time
it; the tick-sampled system share is pooled over rounds and is a figure.
"""
from __future__ import annotations

import time

import pytest

from harness import stats
from harness.files import page_cached_file, read_pages
from harness.scale import pick
from harness.skips import needs_linux
from harness.stats import sample_rounds
from harness.threadcpu import ThreadUsage, in_fresh_thread, system_share
from harness.timing import replay

pytestmark = needs_linux  # RWF_NOWAIT, /proc schedstat, RUSAGE_THREAD

BUFFER_BYTES = 1 << 20  # the user-space buffer of every read
COPY_SIZES = pick(quick=(32 << 20, 64 << 20, 128 << 20), full=(64 << 20, 128 << 20, 256 << 20, 512 << 20))
MAX_ROUNDS = pick(quick=12, full=20)  # rounds are added while an interval straddles its threshold
# The claim: a CPU-free copy leaves the reader asleep (share ≈ 0); a CPU copy keeps it on the CPU (≈ 1).
NO_COPY_CPU_MAX_SHARE = 0.5
# The claim: CPU does not follow the bytes (growth ≈ 1); a CPU copy grows with them (sizes span 4x or more).
NO_COPY_CPU_MAX_GROWTH = 2.0
CONTROL_SLEEP_S = 0.005  # the control: a thread that only sleeps, accounted the same way
GB = 1e9


@pytest.fixture(scope="module")
def cached_file():
    with page_cached_file(max(COPY_SIZES)) as path:
        yield path


def copy_rounds(path: str) -> list[dict[int, ThreadUsage]]:
    """Rounds of one read per size, each in a fresh thread, until both figures are decided."""
    buf = bytearray(BUFFER_BYTES)
    small, large = min(COPY_SIZES), max(COPY_SIZES)

    def done(rounds):
        return stats.decided([r[large].cpu_share for r in rounds], "<=", NO_COPY_CPU_MAX_SHARE) and \
            stats.decided([r[large].cpu / r[small].cpu for r in rounds], "<=", NO_COPY_CPU_MAX_GROWTH)

    def one_round():
        usages = {size: in_fresh_thread(read_pages, path, size, buf) for size in COPY_SIZES}
        usages["sleep"] = in_fresh_thread(time.sleep, CONTROL_SLEEP_S)  # what a CPU-free wait reads
        return usages

    return sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done)


def record_fit(evidence, rounds) -> None:
    cpu = {size: stats.median(r[size].cpu for r in rounds) for size in COPY_SIZES}
    for size in COPY_SIZES:
        evidence.figure(f"cpu_{size >> 20}MiB", unit="s", samples=[r[size].cpu for r in rounds])
        evidence.figure(f"wall_{size >> 20}MiB", unit="s", samples=[r[size].wall for r in rounds])
    slope, r2 = stats.fit_line([size / GB for size in COPY_SIZES], [cpu[size] for size in COPY_SIZES])
    evidence.figure("cpu_slope", slope, "s/GB")
    evidence.figure("cpu_fit_r2", r2)
    evidence.figure("copy_rate", 1 / slope if slope > 0 else 0.0, "GB/s")


@pytest.mark.claim("IO3")
def test_copying_a_cached_file_costs_cpu_in_proportion_to_bytes(benchmark, evidence, cached_file):
    rounds = copy_rounds(cached_file)
    small, large = min(COPY_SIZES), max(COPY_SIZES)
    benchmark.group = "IO3 copying a page-cached file into user space"
    replay(benchmark, [r[large].wall for r in rounds])

    evidence.condition(sizes=list(COPY_SIZES), buffer_bytes=BUFFER_BYTES)
    record_fit(evidence, rounds)
    biggest = [r[large] for r in rounds]
    evidence.figure("copy_cores", unit="cpu s/wall s", samples=[u.cpu / u.wall for u in biggest])
    evidence.figure("copy_runqueue_share", unit="", samples=[u.runq / u.wall for u in biggest])
    evidence.figure("system_share", system_share([r[size] for r in rounds for size in COPY_SIZES]))
    evidence.figure("sleeping_thread_cpu_share", unit="(control)", samples=[r["sleep"].cpu_share for r in rounds])
    evidence.support(
        "copy_cpu_share", op="<=", threshold=NO_COPY_CPU_MAX_SHARE, unit="", samples=[u.cpu_share for u in biggest],
        why="a CPU-free copy would leave the reading thread asleep (as during a DMA) for most of the read",
    )
    evidence.support(
        "cpu_growth", op="<=", threshold=NO_COPY_CPU_MAX_GROWTH, unit="x",
        samples=[r[large].cpu / r[small].cpu for r in rounds],
        why=f"bytes grew {large / small:.0f}x; a free copy's CPU would not grow with them",
    )
    evidence.note("only a device's DMA transfer is CPU-free; this VM has no real device to time it on")
    evidence.settle(benchmark)
