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
The least-squares slope (CPU s per GB) and r² over the sizes are figures. The opposite world
of the CPU share, in every round: a fresh thread that only sleeps, accounted the same way,
shows what the share reads when a thread waits without the CPU, as a CPU-free copy would
(≈ 0); judged by the same threshold, it must land on the claim's side, or the accounting
could not have shown a free copy and the part is not discriminating.

Why CPU share and not CPU / wall: on a shared machine the wall includes time spent waiting
for a CPU, so CPU/wall falls far below 1 under load although copying is not free.

The notes' sentence sits right before their DMA section, so it has a second reading: the
device-to-memory leg, which a DMA engine does while the CPU is free. The second part reads
the test's own file (DEVICE_FILE_BYTES, written and fsynced on a block-backed file system:
tmp_path, or a folder under the project's build/ when tmp_path is in memory) with the page
cache bypassed: O_DIRECT into a page-aligned mmap buffer, or where O_DIRECT is refused, a
buffered read right after posix_fadvise(POSIX_FADV_DONTNEED) on that file alone (checked
once with RWF_NOWAIT; caches are never dropped machine-wide). The same CPU share decides,
by the same threshold. The opposite world, in interleaved rounds: the same bytes read from
the page cache, a copy done by the CPU. Where neither way bypasses the cache (a file
system in memory), the part is not measured.
Traps: on a VM the "device" is virtual and its DMA emulated by the host, out of the guest's
accounting; the guest still spends CPU on every request (pinning and mapping the buffer,
notifying the device), so the CPU per GB of both worlds is a figure. With the fadvise
fallback the timed read also copies into the user buffer, so its share is an upper bound.
The tick-sampled system share of the first part is pooled over rounds and is a figure.
"""
from __future__ import annotations

import contextlib
import errno
import mmap
import os
import re
import shutil
import tempfile
import time

import pytest

from harness import stats
from harness.evidence import Opposite
from harness.files import CHUNK_BYTES, fully_cached, page_cached_file, read_pages
from harness.scale import pick
from harness.skips import needs_linux
from harness.stats import sample_rounds
from harness.subproc import ROOT
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
# The device-to-memory reading: a few MiB read from the device, page cache bypassed, in every round.
DEVICE_FILE_BYTES = 8 << 20
DEVICE_MAX_ROUNDS = pick(quick=12, full=20)  # rounds are added while an interval straddles its threshold
MEMORY_FILE_SYSTEMS = ("tmpfs", "ramfs")  # no device under them: nothing to bypass the page cache to
BUILD_DIR = os.path.join(ROOT, "build")  # where the device's file goes when tmp_path is in memory


@pytest.fixture(scope="module")
def cached_file():
    with page_cached_file(max(COPY_SIZES)) as path:
        yield path


def copy_rounds(path: str) -> list[dict[int, ThreadUsage]]:
    """Rounds of one read per size, each in a fresh thread, until both figures are decided."""
    buf = bytearray(BUFFER_BYTES)
    small, large = min(COPY_SIZES), max(COPY_SIZES)

    def done(rounds):  # the copy's share, its opposite world's (the sleeping thread), and the growth
        return all(stats.decided([r[key].cpu_share for r in rounds], "<=", NO_COPY_CPU_MAX_SHARE)
                   for key in (large, "sleep")) and \
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
    evidence.figure("bytes_growth", large / small, "x")  # what cpu_growth would follow if the CPU copies
    evidence.support(
        "copy_cpu_share", op="<=", threshold=NO_COPY_CPU_MAX_SHARE, unit="", samples=[u.cpu_share for u in biggest],
        why="a CPU-free copy would leave the reading thread asleep (as during a DMA) for most of the read",
        opposite=Opposite("a fresh thread that waits without the CPU (sleeps), accounted the same way, same rounds",
                          samples=[r["sleep"].cpu_share for r in rounds]),
    )
    evidence.support(
        "cpu_growth", op="<=", threshold=NO_COPY_CPU_MAX_GROWTH, unit="x",
        samples=[r[large].cpu / r[small].cpu for r in rounds],
        why=f"bytes grew {large / small:.0f}x; a free copy's CPU would not grow with them",
    )
    evidence.note("this part reads the kernel-to-user copy; the device-to-memory leg (DMA) is the next part's")
    evidence.settle(benchmark)


# --- the other reading: the device writing the bytes into memory, page cache bypassed ----------------
def file_system_type(path: str) -> str:
    """The type of the file system `path` is on, from /proc/mounts (the longest mount point above it)."""
    path = os.path.realpath(path)
    found, length = "", -1
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])  # \040: a space
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= length:
                found, length = fields[2], len(point)
    return found


@contextlib.contextmanager
def device_directory(tmp_path):
    """A folder on a block-backed file system: tmp_path, or if that is in memory one under build/ (removed after)."""
    if file_system_type(str(tmp_path)) not in MEMORY_FILE_SYSTEMS:
        yield str(tmp_path)
        return
    made = not os.path.isdir(BUILD_DIR)
    os.makedirs(BUILD_DIR, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="io3-device-", dir=BUILD_DIR)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(BUILD_DIR)


def write_synced(path: str, size: int) -> None:
    """Write `size` bytes (one random chunk repeated) and fsync them, so no writeback runs under a read."""
    chunk = os.urandom(CHUNK_BYTES)
    with open(path, "wb", buffering=0) as f:
        for offset in range(0, size, CHUNK_BYTES):
            f.write(chunk[: min(CHUNK_BYTES, size - offset)])
        os.fsync(f.fileno())


def evict(path: str) -> None:
    """Drop this one file's clean pages from the page cache (never the machine's caches)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def first_page_cached(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(mmap.PAGESIZE)], 0, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def read_all(path: str, buf, flags: int = 0) -> int:
    """pread the whole file into `buf` (opened with `flags`, e.g. O_DIRECT); returns the bytes read."""
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        done = 0
        while n := os.preadv(fd, [buf], done):
            done += n
        return done
    finally:
        os.close(fd)


def page_cache_bypass(path: str, buf) -> tuple[str, str]:
    """How a read of `path` skips the page cache here: ("O_DIRECT" or "POSIX_FADV_DONTNEED", ""), or ("", why not)."""
    try:
        if read_all(path, buf, os.O_DIRECT) == DEVICE_FILE_BYTES:
            return "O_DIRECT", ""
        refused = "O_DIRECT read came up short"
    except OSError as exc:
        refused = f"O_DIRECT refused ({errno.errorcode.get(exc.errno, exc.errno)})"
    read_all(path, buf)  # bring every page in, then see whether fadvise drops them
    evict(path)
    if not first_page_cached(path):
        return "POSIX_FADV_DONTNEED", ""
    return "", f"{refused}, and POSIX_FADV_DONTNEED left the file's pages cached"


def device_rounds(path: str, bypass: str, buf) -> list[dict[str, ThreadUsage]]:
    """Rounds of (the file read from the device, the same bytes from the page cache), alternating which goes first."""
    direct = bypass == "O_DIRECT"

    def from_device():
        if not direct:
            evict(path)  # untimed: the read then waits for the device, then copies
        return in_fresh_thread(read_all, path, buf, os.O_DIRECT if direct else 0)

    def from_cache():
        if not fully_cached(path):
            read_all(path, buf)  # untimed: bring the pages back
        return in_fresh_thread(read_all, path, buf)

    made: list = []

    def one_round():
        worlds = {"device": from_device, "cache": from_cache}
        order = list(worlds) if len(made) % 2 == 0 else list(reversed(worlds))
        made.append(None)
        return {name: worlds[name]() for name in order}

    def done(rounds):
        return all(stats.decided([r[w].cpu_share for r in rounds], "<=", NO_COPY_CPU_MAX_SHARE)
                   for w in ("device", "cache"))

    return sample_rounds(one_round, max_rounds=DEVICE_MAX_ROUNDS, done=done)


@pytest.mark.claim("IO3")
def test_reading_from_the_device_leaves_the_reader_off_the_cpu(benchmark, evidence, tmp_path):
    with device_directory(tmp_path) as folder, contextlib.ExitStack() as stack:
        path = os.path.join(folder, "device-read.bin")
        stack.callback(lambda: os.path.exists(path) and os.unlink(path))
        write_synced(path, DEVICE_FILE_BYTES)
        buf = stack.enter_context(mmap.mmap(-1, BUFFER_BYTES))  # page-aligned, as O_DIRECT needs
        fs_type = file_system_type(folder)
        evidence.condition(file_bytes=DEVICE_FILE_BYTES, buffer_bytes=BUFFER_BYTES, file_system=fs_type)
        evidence.figure("device_file_system", fs_type)
        if fs_type in MEMORY_FILE_SYSTEMS:
            evidence.not_measured(f"no block device here: tmp_path and build/ are both on {fs_type}")
        bypass, why = page_cache_bypass(path, buf)
        if not bypass:
            evidence.not_measured(f"the page cache cannot be bypassed for this file on {fs_type}: {why}")
        rounds = device_rounds(path, bypass, buf)
    device, cache = [r["device"] for r in rounds], [r["cache"] for r in rounds]
    benchmark.group = "IO3 reading a file from the device, page cache bypassed"
    replay(benchmark, [u.wall for u in device])

    gb = DEVICE_FILE_BYTES / GB
    evidence.figure("page_cache_bypass", bypass)
    for name, us in (("device_read", device), ("page_cache_read", cache)):
        evidence.figure(f"{name}_wall_per_gb", unit="s/GB", samples=[u.wall / gb for u in us])
        evidence.figure(f"{name}_cpu_per_gb", unit="s/GB", samples=[u.cpu / gb for u in us])
    evidence.figure("device_read_cores", unit="cpu s/wall s", samples=[u.cpu / u.wall for u in device])
    evidence.figure("device_to_copy_cpu_ratio", unit="x", samples=[d.cpu / c.cpu for d, c in zip(device, cache)])
    if bypass != "O_DIRECT":
        evidence.note("O_DIRECT refused: each device read follows POSIX_FADV_DONTNEED on the file and also copies "
                      "into the user buffer, so its CPU share is an upper bound on the device leg's")
    evidence.support(
        "device_read_cpu_share", op="<=", threshold=NO_COPY_CPU_MAX_SHARE, unit="",
        samples=[u.cpu_share for u in device],
        opposite=Opposite("the same bytes read from the page cache (a copy done by the CPU), interleaved rounds",
                          samples=[u.cpu_share for u in cache]),
        why="while the device writes the bytes into memory (DMA), the reading thread sleeps off the CPU",
    )
    evidence.note("on a VM the device is virtual: its DMA is emulated by the host, outside the guest's accounting")
    evidence.settle(benchmark)
