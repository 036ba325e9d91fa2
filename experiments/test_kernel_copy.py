"""IO1, IO2, IO3: data sits in kernel buffers, reaching it costs a copy, and the copy costs CPU.

IO1 (holds-with-caveat): applications cannot touch kernel buffers; data is copied into user
space. Measured on a page-cached temp file (harness.files: written, fsynced, read once,
checked with preadv(RWF_NOWAIT)), so every path reads memory and no disk time enters:
- readinto() into a 1 MiB user buffer: the copy. Its CPU is almost all *system* time.
- mmap() of the same file, one byte read per page (a C-level stepped slice, so Python adds
  little): the page-cache pages are mapped into our address space, nothing is copied.
- to a socket, os.sendfile() versus readinto()+sendall(), a drain thread reading the far end:
  sendfile hands page-cache pages to the socket without passing through user space.
The copy is shown by readinto's system-CPU share; the caveat by mmap's CPU per GB and, on an
AF_UNIX socketpair, sendfile's sender CPU per GB, as fractions of the copying path's, all in
the same rounds. The loopback TCP row is measured and reported but decides nothing: each side
runs the other's protocol work in softirq, so per-thread CPU cannot isolate the sender, and
the pair's total CPU ratio swings with scheduling (0.8-1.6 over 12 runs). It does show the
other side of the caveat: the receiver still copies every byte, and end to end on one host
sendfile saves little (the receiver's CPU per GB rises when its bytes come straight from
page-cache pages rather than from freshly written socket buffers).

IO2 (holds): bytes sent to a socket are queued in the receiver's kernel buffer before any
recv (FIONREAD counts them), and the buffer sizes bound what a non-blocking sender can push:
on loopback TCP, every accepted byte is either in the peer's receive queue (FIONREAD) or in
the sender's unsent queue (SIOCOUTQNSD), and a larger SO_RCVBUF lets the sender push more.

IO3 (expected refuted): "copying costs no CPU". readinto of a cached file at several sizes:
thread CPU / wall ≈ 1 while copying, and CPU grows in proportion to bytes (least-squares slope
in CPU s per GB, r²). CPU/wall is recorded, but on a shared machine the wall includes time
spent waiting for a CPU, so the checks divide by the time the thread was not on a run queue
(/proc/thread-self/schedstat): CPU share ≈ 1 means the reader never slept during the copy.
The support checks state the claim's prediction (CPU share ≤ 0.2, CPU not growing with bytes),
so the measurement refutes it. Only a device's DMA leg is CPU-free, and there is no real
device to show that on this VM.

Traps: (1) CPU is taken per thread in a *fresh* thread (see in_fresh_thread): Linux splits a
thread's precise CPU time into user/system by its tick samples since the thread began, so in
pytest's long-lived main thread a short kernel-heavy window reads as user time. The split is
still tick-sampled (4 ms ticks), so it is pooled over all rounds and applied to the precise
total (time.thread_time); decisions use that total or the pooled share. (2) On loopback the
receiver still copies every byte into its own buffer; that cost is reported as receiver CPU
per GB, not charged to the sender. (3) Touching one byte per page of an mmap proves the pages
are mapped, not that every byte was read; reading every byte would be CPU work of its own,
not a copy.
"""
from __future__ import annotations

import fcntl
import mmap
import os
import resource
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass

import pytest

from harness.files import page_cached_file
from harness.scale import pick
from harness.skips import needs_linux

pytestmark = needs_linux  # FIONREAD/SIOCOUTQNSD, RWF_NOWAIT, /proc schedstat, sendfile to sockets

FILE_BYTES = pick(quick=128 << 20, full=512 << 20)
BUFFER_BYTES = 1 << 20  # the user-space buffer of every read/recv
PAGE_BYTES = mmap.PAGESIZE
ROUNDS = pick(quick=5, full=15)
PASSES = pick(quick=3, full=4)  # IO1: whole-file passes per sample, so each sample spans many 4 ms ticks
SEND_PASSES = pick(quick=2, full=4)  # the socket paths are slower (a receiver copies too): fewer passes
SEND_SNDBUF = 4 << 20  # fixed and large: an autotuned buffer starts small, and every block-and-wake
# of the sender is overhead that hides the copy's cost (unix sender ratio 0.35-0.41 without this)
TRANSPORTS = ("unix", "tcp")
MIN_READ_SYSTEM_SHARE = 0.5  # readinto's CPU measures 0.95-1.0 system time here
MAX_MMAP_CPU_RATIO = 0.5  # mmap + page touches / readinto CPU per GB measures 0.17-0.24
MAX_SENDFILE_CPU_RATIO = 0.6  # unix: sendfile / read+sendall sender CPU measures 0.13-0.25
COPY_SIZES = pick(quick=(32 << 20, 64 << 20, 128 << 20), full=(64 << 20, 128 << 20, 256 << 20, 512 << 20))
NO_COPY_CPU_MAX_SHARE = 0.2  # IO3's prediction: a CPU-free copy leaves the thread mostly asleep
NO_COPY_CPU_MAX_GROWTH = 1.5  # IO3's prediction: CPU would not follow bytes (sizes span 4x)
PROBE_BYTES = 64 << 10  # IO2: one message that fits any default buffer
SMALL_RCVBUF = 16 << 10  # IO2: requested sizes; Linux doubles them (bookkeeping overhead)
LARGE_RCVBUF = 512 << 10
SENDER_SNDBUF = 16 << 10
SIOCOUTQNSD = 0x894B  # linux/sockios.h: bytes the sender has queued but not yet sent
SETTLE_S = 0.01  # let loopback delivery finish before the queues are read
GB = 1e9


@pytest.fixture(scope="module")
def cached_file():
    with page_cached_file(FILE_BYTES) as path:
        yield path


@dataclass(frozen=True)
class ThreadUsage:
    wall: float
    cpu: float  # precise (time.thread_time)
    user: float  # tick-sampled split of the same time (getrusage RUSAGE_THREAD)
    system: float
    runq: float  # time spent runnable but waiting for a CPU (other agents' load)
    span: float  # wall time around the run-queue readings (a little wider than `wall`)

    @property
    def cpu_share(self) -> float:
        """CPU time / the time the thread was not waiting for a CPU: ≈ 1 means it never slept."""
        ready = self.span - self.runq
        return self.cpu / ready if ready > 0 else 0.0


def runqueue_wait() -> float:
    """Seconds this thread has waited on a run queue (schedstat field 2, ns)."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def in_fresh_thread(fn, *args) -> ThreadUsage:
    """Run fn(*args) in a new thread and account that thread alone (trap 1 in the docstring)."""
    out: dict = {}

    def body():
        try:
            # nested readings: the span encloses the run-queue window, which encloses the CPU one
            s0 = time.perf_counter()
            q0, r0 = runqueue_wait(), resource.getrusage(resource.RUSAGE_THREAD)
            c0, w0 = time.thread_time(), time.perf_counter()
            fn(*args)
            w1, c1 = time.perf_counter(), time.thread_time()
            r1, q1 = resource.getrusage(resource.RUSAGE_THREAD), runqueue_wait()
            s1 = time.perf_counter()
            out["usage"] = ThreadUsage(
                w1 - w0, c1 - c0, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime, q1 - q0, s1 - s0
            )
        except BaseException as exc:  # re-raised in the caller
            out["error"] = exc

    t = threading.Thread(target=body, name="measured")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["usage"]


def _median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def record_paths(evidence, samples: dict[str, list[ThreadUsage]], nbytes: int, who: str = "") -> None:
    """Wall and CPU seconds per GB for each path, and that CPU split into user and system.

    The split is tick-sampled (4 ms ticks), so it is taken over all rounds together and applied
    to the precise CPU total: user + system then add up to the CPU figure.
    """
    gb = nbytes / GB
    for name, us in samples.items():
        evidence.figure(f"{name}{who}_wall_per_gb", unit="s/GB", samples=[u.wall / gb for u in us])
        evidence.figure(f"{name}{who}_cpu_per_gb", unit="s/GB", samples=[u.cpu / gb for u in us])
        mean_cpu = sum(u.cpu for u in us) / (gb * len(us))
        evidence.figure(f"{name}{who}_user_per_gb", mean_cpu * (1 - system_share(us)), "s/GB")
        evidence.figure(f"{name}{who}_system_per_gb", mean_cpu * system_share(us), "s/GB")


def system_share(us: list[ThreadUsage]) -> float:
    """System time's share of the tick-sampled CPU time, over all the samples together."""
    total = sum(u.user + u.system for u in us)
    return sum(u.system for u in us) / total if total > 0 else 0.0


# --- IO1: the copy, and mmap / sendfile around it -------------------------------------------------
def read_pages(path: str, nbytes: int, buf: bytearray) -> bytes:
    """readinto() the first nbytes into buf; return one byte per page (the data we now hold)."""
    sampled = []
    with open(path, "rb", buffering=0) as f:
        left = nbytes
        while left > 0:
            n = f.readinto(memoryview(buf)[: min(len(buf), left)])
            if n == 0:
                break
            sampled.append(bytes(buf[0:n:PAGE_BYTES]))
            left -= n
    return b"".join(sampled)


def map_pages(path: str) -> bytes:
    """mmap the file and read one byte per page, in 1 MiB stepped slices (each faults its pages)."""
    sampled = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        for off in range(0, len(m), BUFFER_BYTES):
            sampled.append(m[off : off + BUFFER_BYTES : PAGE_BYTES])
    return b"".join(sampled)


@pytest.mark.claim("IO1")
def test_read_copies_page_cache_while_mmap_maps_it(benchmark, evidence, cached_file):
    buf = bytearray(BUFFER_BYTES)
    samples: dict[str, list[ThreadUsage]] = {"readinto": [], "mmap": []}
    seen: dict[str, bytes] = {}

    def passes(name, fn, *args):
        for _ in range(PASSES):
            seen[name] = fn(*args)

    def setup():
        samples["mmap"].append(in_fresh_thread(passes, "mmap", map_pages, cached_file))

    def copy():
        samples["readinto"].append(in_fresh_thread(passes, "readinto", read_pages, cached_file, FILE_BYTES, buf))

    benchmark.group = "IO1 reading a page-cached file: copy vs map"
    benchmark.pedantic(copy, setup=setup, rounds=ROUNDS)

    evidence.condition(file_bytes=FILE_BYTES, passes=PASSES, buffer_bytes=BUFFER_BYTES, page_bytes=PAGE_BYTES)
    record_paths(evidence, samples, FILE_BYTES * PASSES)
    evidence.figure("pages_sampled_equal", seen["mmap"] == seen["readinto"])
    if seen["mmap"] != seen["readinto"]:
        pytest.fail("mmap and readinto saw different bytes: the comparison would be meaningless")
    ratio = evidence.figure(
        "mmap_cpu_ratio", unit="x",
        samples=[m.cpu / r.cpu for m, r in zip(samples["mmap"], samples["readinto"])],
    )
    evidence.support(
        "readinto_system_share", system_share(samples["readinto"]), ">=", MIN_READ_SYSTEM_SHARE, "",
        why="read()'s cost is the kernel copying page-cache pages into the user buffer",
    )
    evidence.caveat(
        "mmap_cpu_ratio", ratio, "<=", MAX_MMAP_CPU_RATIO, "x",
        why="mmap maps the page-cache pages into user space; touching them copies nothing",
    )
    evidence.note("mmap figures include a one-byte-per-page touch (a C stepped slice) that faults every page in")
    evidence.settle(benchmark, expect="holds-with-caveat")


def connected_pair(transport: str, rcvbuf: int | None = None, sndbuf: int | None = None):
    """(sender, receiver): an AF_UNIX socketpair or a loopback TCP connection (port 0)."""
    if transport == "unix":
        sender, receiver = socket.socketpair()
        if rcvbuf:
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        return sender, receiver
    with socket.socket() as listener:
        if rcvbuf:  # before listen(): the window scale is fixed by the handshake
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        sender = socket.socket()
        try:
            if sndbuf:
                sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sender.connect(listener.getsockname())
            receiver, _ = listener.accept()
        except BaseException:
            sender.close()
            raise
    return sender, receiver


class DrainedLink:
    """A connected pair whose receiving end a thread reads (recv_into) and discards until EOF."""

    def __init__(self, transport: str):
        self.sender, self.receiver = connected_pair(transport, sndbuf=SEND_SNDBUF)
        self.received = 0
        self.drain_cpu = 0.0
        self._thread = threading.Thread(target=self._drain, name="drain", daemon=True)
        self._thread.start()

    def _drain(self):
        buf = bytearray(BUFFER_BYTES)
        c0 = time.thread_time()
        while n := self.receiver.recv_into(buf):
            self.received += n
        self.drain_cpu = time.thread_time() - c0

    def close(self):
        self.sender.close()  # EOF ends the drain
        self._thread.join(timeout=10)
        self.receiver.close()


def send_by_copy(path: str, sock: socket.socket, buf: bytearray) -> None:
    view = memoryview(buf)
    for _ in range(SEND_PASSES):
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                sock.sendall(view[:n])


def send_by_sendfile(path: str, sock: socket.socket) -> None:
    for _ in range(SEND_PASSES):
        with open(path, "rb") as f:
            size, offset = os.fstat(f.fileno()).st_size, 0
            while offset < size:
                offset += os.sendfile(sock.fileno(), f.fileno(), offset, size - offset)


@pytest.mark.claim("IO1")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sendfile_skips_the_user_space_copy(benchmark, evidence, cached_file, transport):
    buf = bytearray(BUFFER_BYTES)
    sender = {"read_sendall": [], "sendfile": []}
    receiver = {"read_sendall": [], "sendfile": []}
    received = []
    links: list[DrainedLink] = []

    def finish(path, link):
        link.close()
        receiver[path].append(link.drain_cpu)
        received.append(link.received)

    def setup():
        link = DrainedLink(transport)
        links.append(link)
        sender["read_sendall"].append(in_fresh_thread(send_by_copy, cached_file, link.sender, buf))
        finish("read_sendall", link)
        link = DrainedLink(transport)
        links.append(link)
        return (link,), {}

    def by_sendfile(link):
        sender["sendfile"].append(in_fresh_thread(send_by_sendfile, cached_file, link.sender))

    benchmark.group = "IO1 file to socket: sendfile vs read+sendall"
    try:
        benchmark.pedantic(by_sendfile, setup=setup, teardown=lambda link: finish("sendfile", link), rounds=ROUNDS)
    finally:
        for link in links:
            link.close()

    evidence.condition(transport=transport, file_bytes=FILE_BYTES, passes=SEND_PASSES, buffer_bytes=BUFFER_BYTES)
    record_paths(evidence, sender, FILE_BYTES * SEND_PASSES, "_sender")
    gb = FILE_BYTES * SEND_PASSES / GB
    for path, cpus in receiver.items():
        evidence.figure(f"{path}_receiver_cpu_per_gb", unit="s/GB", samples=[c / gb for c in cpus])
    ratio = evidence.figure(
        "sendfile_sender_cpu_ratio", unit="x",
        samples=[s.cpu / c.cpu for s, c in zip(sender["sendfile"], sender["read_sendall"])],
    )
    pair_samples = [
        (s.cpu + rs) / (c.cpu + rc)
        for s, c, rs, rc in zip(sender["sendfile"], sender["read_sendall"], receiver["sendfile"], receiver["read_sendall"])
    ]
    pair = evidence.figure("sendfile_pair_cpu_ratio", unit="x", samples=pair_samples)
    evidence.support(
        "bytes_delivered_fraction", min(received) / (FILE_BYTES * SEND_PASSES), "==", 1.0, "",
        why="both paths deliver the whole file to the receiver",
    )
    if transport == "unix":
        evidence.caveat(
            "sendfile_sender_cpu_ratio", ratio, "<=", MAX_SENDFILE_CPU_RATIO, "x",
            why="sendfile passes page-cache pages to the socket; read+sendall copies them out and back in",
        )
    else:
        evidence.note(
            f"loopback TCP: not decided. Each side runs the other's protocol work in softirq, so per-thread "
            f"CPU does not isolate the sender (ratio {ratio:.2f} here), and the pair's total ({pair:.2f} here) "
            f"swings with scheduling ({min(pair_samples):.2f}-{max(pair_samples):.2f} over this run's "
            f"{len(pair_samples)} rounds; earlier runs on the development machine, not part of this evidence, "
            "spanned 0.80-1.57), i.e. end to end on one host sendfile saves little"
        )
    evidence.note("the receiver copies into its own buffer on both paths (receiver CPU per GB)")
    evidence.settle(benchmark, expect="holds-with-caveat" if transport == "unix" else "holds")


# --- IO2: the kernel buffer ------------------------------------------------------------------------
def queued(sock: socket.socket, request: int) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0" * 4))[0]


@pytest.mark.claim("IO2")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sent_bytes_wait_in_receive_buffer_before_recv(benchmark, evidence, transport):
    payload = os.urandom(PROBE_BYTES)
    counts = {"queued_before": [], "queued_after": [], "intact": []}
    pairs = []

    def setup():
        pair = connected_pair(transport)
        pairs.append(pair)
        pair[0].sendall(payload)
        deadline = time.monotonic() + 1.0
        while queued(pair[1], termios.FIONREAD) < PROBE_BYTES and time.monotonic() < deadline:
            time.sleep(0.001)  # loopback TCP may still be delivering
        counts["queued_before"].append(queued(pair[1], termios.FIONREAD))
        return (pair[1], bytearray(PROBE_BYTES)), {}

    def receive(sock, buf):
        sock.recv_into(buf, PROBE_BYTES, socket.MSG_WAITALL)

    def teardown(sock, buf):
        counts["queued_after"].append(queued(sock, termios.FIONREAD))
        counts["intact"].append(bytes(buf) == payload)

    benchmark.group = "IO2 receiving bytes already queued in the kernel"
    try:
        benchmark.pedantic(receive, setup=setup, teardown=teardown, rounds=ROUNDS)
    finally:
        for pair in pairs:
            for s in pair:
                s.close()

    evidence.condition(transport=transport, probe_bytes=PROBE_BYTES)
    evidence.figure("queued_before_recv", unit="B", samples=counts["queued_before"])
    evidence.figure("queued_after_recv", unit="B", samples=counts["queued_after"])
    evidence.support(
        "queued_fraction_before_recv", min(counts["queued_before"]) / PROBE_BYTES, "==", 1.0, "",
        why="FIONREAD counts every sent byte in the receiver's kernel buffer before any recv",
    )
    evidence.support("queued_after_recv_max", max(counts["queued_after"]), "==", 0, "B", why="recv moved them out")
    evidence.support("payload_intact", all(counts["intact"]), "==", True, why="the user buffer holds the bytes sent")
    evidence.settle(benchmark, expect="holds")


def push_until_full(rcvbuf: int) -> dict:
    """Fill a fresh loopback TCP connection with non-blocking sends; return where the bytes are."""
    sender, receiver = connected_pair("tcp", rcvbuf=rcvbuf, sndbuf=SENDER_SNDBUF)
    try:
        sender.setblocking(False)
        chunk, accepted = bytes(4096), 0
        while True:
            try:
                accepted += sender.send(chunk)
            except BlockingIOError:
                break
        time.sleep(SETTLE_S)
        return {
            "accepted": accepted,
            "in_receiver": queued(receiver, termios.FIONREAD),
            "unsent_in_sender": queued(sender, SIOCOUTQNSD),
            "rcvbuf": receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            "sndbuf": sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        }
    finally:
        sender.close()
        receiver.close()


@pytest.mark.claim("IO2")
def test_receive_buffer_size_bounds_what_sender_can_push(benchmark, evidence):
    runs = {"small": [], "large": []}

    def setup():
        runs["small"].append(push_until_full(SMALL_RCVBUF))

    benchmark.group = "IO2 non-blocking sender filling the kernel buffers"
    benchmark.pedantic(lambda: runs["large"].append(push_until_full(LARGE_RCVBUF)), setup=setup, rounds=ROUNDS)

    evidence.condition(transport="tcp", sender_sndbuf=SENDER_SNDBUF)
    for size, rs in runs.items():
        for key in ("accepted", "in_receiver", "unsent_in_sender", "rcvbuf", "sndbuf"):
            evidence.figure(f"{size}_{key}", unit="B", samples=[r[key] for r in rs])
    every = runs["small"] + runs["large"]
    evidence.support(
        "accounted_fraction_min", min((r["in_receiver"] + r["unsent_in_sender"]) / r["accepted"] for r in every),
        "==", 1.0, "", why="every byte send() accepted sits in a kernel buffer: the peer's queue or the sender's",
    )
    evidence.support(
        "receiver_fill_max", max(r["in_receiver"] / r["rcvbuf"] for r in every), "<=", 1.0, "x SO_RCVBUF",
        why="the receive queue never holds more than the receive buffer allows",
    )
    evidence.support(
        "accepted_over_buffers_max", max(r["accepted"] / (r["rcvbuf"] + r["sndbuf"]) for r in every),
        "<=", 1.0, "x (rcvbuf+sndbuf)", why="once both buffers are full, send() refuses with BlockingIOError",
    )
    growth = _median([l["accepted"] / s["accepted"] for s, l in zip(runs["small"], runs["large"])])
    evidence.support(
        "accepted_growth_with_rcvbuf", growth, ">=", 2.0, "x",
        why=f"a {LARGE_RCVBUF // SMALL_RCVBUF}x larger SO_RCVBUF lets the sender push more before blocking",
    )
    evidence.note("AF_UNIX stream sockets charge queued bytes to the sender's SO_SNDBUF; only TCP shows the receiver's bound")
    evidence.settle(benchmark, expect="holds")


# --- IO3: the copy costs CPU -------------------------------------------------------------------------
@pytest.mark.claim("IO3")
def test_copying_a_cached_file_costs_cpu_in_proportion_to_bytes(benchmark, evidence, cached_file):
    buf = bytearray(BUFFER_BYTES)
    largest = max(COPY_SIZES)
    samples: dict[int, list[ThreadUsage]] = {size: [] for size in COPY_SIZES}

    def setup():
        for size in COPY_SIZES:
            if size != largest:
                samples[size].append(in_fresh_thread(read_pages, cached_file, size, buf))

    benchmark.group = "IO3 copying a page-cached file into user space"
    benchmark.pedantic(
        lambda: samples[largest].append(in_fresh_thread(read_pages, cached_file, largest, buf)),
        setup=setup, rounds=ROUNDS,
    )

    evidence.condition(sizes=list(COPY_SIZES), buffer_bytes=BUFFER_BYTES)
    cpu = {size: _median([u.cpu for u in us]) for size, us in samples.items()}
    for size, us in samples.items():
        evidence.figure(f"cpu_{size >> 20}MiB", cpu[size], "s", samples=[u.cpu for u in us])
        evidence.figure(f"wall_{size >> 20}MiB", unit="s", samples=[u.wall for u in us])
    xs = [size / GB for size in COPY_SIZES]
    ys = [cpu[size] for size in COPY_SIZES]
    slope, r2 = _fit(xs, ys)
    evidence.figure("cpu_slope", slope, "s/GB")
    evidence.figure("cpu_fit_r2", r2)
    evidence.figure("copy_rate", 1 / slope if slope > 0 else 0.0, "GB/s")
    every = [u for us in samples.values() for u in us]
    evidence.figure("copy_cores", unit="cpu s/wall s", samples=[u.cpu / u.wall for u in samples[largest]])
    evidence.figure("copy_runqueue_share", unit="", samples=[u.runq / u.wall for u in samples[largest]])
    share = evidence.figure("copy_cpu_share", unit="", samples=[u.cpu_share for u in samples[largest]])
    evidence.support(
        "copy_cpu_share", share, "<=", NO_COPY_CPU_MAX_SHARE, "",
        why="a CPU-free copy would leave the reading thread asleep (as during a DMA) for most of the read",
    )
    evidence.figure("system_share", system_share(every))
    evidence.support(
        "system_share_of_ready_time", system_share(every) * share, "<=", NO_COPY_CPU_MAX_SHARE, "",
        why="the copy runs in the kernel, so that is where its CPU would show",
    )
    evidence.support(
        "cpu_growth", cpu[largest] / cpu[min(COPY_SIZES)], "<=", NO_COPY_CPU_MAX_GROWTH, "x",
        why=f"bytes grew {largest / min(COPY_SIZES):.0f}x; a free copy's CPU would not grow with them",
    )
    evidence.note("only a device's DMA transfer is CPU-free; this VM has no real device to time it on")
    evidence.settle(benchmark, expect="refuted")


def _fit(xs, ys):
    """Least-squares slope through the points and its r²."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else 0.0
    return slope, r2
