"""IO8: is Python's asyncio asynchronous I/O in the AIO sense (the kernel copies, then reports completion)?

Expected: refuted. asyncio (and uvloop/libuv) is readiness-based: the kernel says "this socket
can be read" (epoll), and the loop's own code then copies the data with recv/read. AIO in the
POSIX/io_uring sense hands the kernel a buffer and is told when the data is *in* it.

What is measured, on both loops (the `loop` fixture), and how each prediction is checked:
- The loop's own receive path, ``loop.sock_recv``, on a socket whose ``recv`` is observed (a
  socket.socket subclass; both loops call the socket's recv): at the moment the loop's code
  calls the recv that returns the data, how many bytes does the kernel still hold (FIONREAD)?
  AIO predicts 0 (the kernel copied them before reporting completion); readiness predicts the
  whole message. Each message is sent only after sock_recv is waiting. The same probe read
  right after the recv shows it can read 0; io_uring, where the kernel allows it, reads the
  same message by completion in the same rounds: the opposite world, judged by the same check.
- The syscalls of a stream read (strace -f, on harness.children.io8_traced_read running the
  same loop kind): AIO predicts no user-space read syscall per message, and io_uring_enter
  calls to reap completions. The io_uring child, traced the same way, is the opposite world:
  the same checks must read the other way on it.
- Files: AIO predicts that the loop can wait for a regular file as it waits for a socket.
  Measured: epoll.register and loop.add_reader on a regular file, with a socket as the control
  (epoll must accept it, or the probe decides nothing). asyncio file reads therefore go to a
  thread (run_in_executor, the benchmark); io_uring reads the same file by completion.

Known traps: uvloop's libuv opens an io_uring instance (for batching epoll_ctl changes and,
where enabled, file operations), so "an io_uring fd exists" does not mean socket reads are
completion-based; the strace counts show they are still epoll_pwait + read. asyncio's
sock_recv tries recv once before waiting: that attempt finds nothing and is counted apart.
strace may be missing (CI), ptrace may be refused, and io_uring may be refused
(kernel.io_uring_disabled, seccomp, no liburing wheel): those parts say so in the record, and
their checks then have no opposite world (the catalogue's `unfalsified` says why).
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import aio, probes, uring
from harness.aio import bench_async
from harness.evidence import Opposite
from harness.scale import pick
from harness.skips import needs_linux
from harness.subproc import ROOT, child_env, kill_group, module_command

MESSAGE_BYTES = 64
# Claim (AIO): the kernel has copied the message before the loop's code runs, 0 bytes left when
# the loop calls recv; negation (readiness): the whole message still waits. Threshold: half of it.
LEFT_THRESHOLD = MESSAGE_BYTES / 2
RECV_ROUNDS = pick(quick=10, full=100)
RECV_BATCH = 20
TRACED_MESSAGES = pick(quick=20, full=200)
STRACE_TIMEOUT_S = 60
# Claim (AIO): the kernel fills the buffer, 0 read syscalls and >= 1 io_uring_enter per message;
# negation (readiness): 1 read and 0 io_uring_enter per message. Threshold: half a call.
CALLS_THRESHOLD = 0.5  # per message
URING_WORLD = "the same message read by io_uring (completion-based), in the same rounds"
FILE_BYTES = 64 * 1024
FILE_ROUNDS = pick(quick=20, full=200)
# Claim (AIO): the loop can wait for a file as for a socket, so epoll accepts it; negation: refused.
ACCEPTED = "accepted"
MESSAGE = b"m" * MESSAGE_BYTES
TRACED_CALLS = "epoll_wait,epoll_pwait,epoll_pwait2,read,readv,recvfrom,recvmsg,io_uring_enter,write"
_LINE = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((-?\d+)(?:<([^>]*)>)?.*=\s*(-?\d+)")


class ObservedSocket(socket.socket):
    """A socket that records, at each recv the loop makes, the bytes the kernel holds and what recv got."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[int, int]] = []  # (bytes queued before the call, bytes returned or -1)

    def recv(self, n, *flags):
        queued = probes.bytes_queued(self)
        try:
            data = super().recv(n, *flags)
        except (BlockingIOError, InterruptedError):
            self.calls.append((queued, -1))
            raise
        self.calls.append((queued, len(data)))
        return data


def recv_path(loop, benchmark, sender, receiver, ring) -> dict[str, list]:
    """Messages read through loop.sock_recv (benchmarked), and by io_uring in the same rounds if given."""
    seen = {"left_at_recv": [], "left_after": [], "recv_calls": [], "uring_left": []}
    uring_pair = socket.socketpair() if ring else (None, None)
    buf = bytearray(MESSAGE_BYTES)

    async def one_message():
        receiver.calls.clear()
        loop.call_soon(sender.send, MESSAGE)  # sent once sock_recv is waiting
        data = await loop.sock_recv(receiver, MESSAGE_BYTES)
        seen["left_after"].append(probes.bytes_queued(receiver))
        delivering = [queued for queued, got in receiver.calls if got > 0]
        seen["left_at_recv"].append(delivering[0] if delivering else 0)  # 0: the loop never had to copy
        seen["recv_calls"].append(len(receiver.calls))
        return data

    def uring_message():
        if ring:
            a, b = uring_pair
            assert ring.recv(b, buf, then=lambda: a.send(MESSAGE)) == MESSAGE_BYTES
            seen["uring_left"].append(probes.bytes_queued(b))  # after completion: anything left to copy?

    try:
        data = bench_async(benchmark, loop, one_message, rounds=RECV_ROUNDS, batch=RECV_BATCH, setup=uring_message)
    finally:
        for s in uring_pair:
            if s is not None:
                s.close()
    assert data == MESSAGE, "sock_recv must deliver the message it was sent"
    return seen


@pytest.mark.claim("IO8")
@needs_linux
def test_sock_recv_copies_data_the_kernel_still_holds(benchmark, evidence, loop, socket_pair):
    sender, plain = socket_pair
    kind = aio.kind(loop)
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(ObservedSocket(fileno=os.dup(plain.fileno())))
        receiver.setblocking(False)  # as an event loop's sockets are
        ring = stack.enter_context(uring.Uring()) if uring.refusal() is None else None
        benchmark.group = "IO8 one message via loop.sock_recv"
        seen = recv_path(loop, benchmark, sender, receiver, ring)
    evidence.condition(loop=kind, message_bytes=MESSAGE_BYTES)
    polls = sorted({t for t in probes.open_descriptors().values() if t in ("anon_inode:[eventpoll]", uring.POLLER)})
    evidence.figure("kernel_poll_objects", ", ".join(polls))
    evidence.figure("recv_calls_per_message", unit="calls", samples=seen["recv_calls"])
    evidence.figure("bytes_left_after_recv", unit="bytes", samples=seen["left_after"])
    if not ring:
        evidence.note(f"io_uring contrast not run: {uring.refusal()}")
    if kind == "asyncio":
        selector = loop._selector  # private, but the only way to name the selector asyncio chose
        evidence.figure("selector_class", type(selector).__name__)
        poller = os.readlink(f"/proc/self/fd/{selector.fileno()}")
        evidence.support("selector_kernel_object", value=poller, op="==", threshold=uring.POLLER,
                         why="a completion-based loop would wait on an io_uring instance")
    elif uring.POLLER in polls:
        evidence.note("libuv holds an io_uring fd (epoll_ctl batching / file ops); socket reads still "
                      "go through epoll: see the strace test")
    evidence.control("probe_bytes_left_after_recv", op="==", threshold=0, unit="bytes", value=max(seen["left_after"]),
                     why="the probe still read bytes in the kernel after recv returned the whole message")
    evidence.support("bytes_left_when_the_loop_calls_recv", op="<=", threshold=LEFT_THRESHOLD, unit="bytes",
                     samples=seen["left_at_recv"],
                     why="AIO reports completion after the kernel copied the message; nothing is left to recv",
                     opposite=Opposite(URING_WORLD, samples=seen["uring_left"]) if ring else None)
    evidence.settle(benchmark)


def trace_child(kind: str, out_path) -> tuple[list[str], str]:
    """Run the traced child under strace; return the trace lines between the markers, or why none."""
    cmd = ["strace", "-f", "-qq", "-yy", "-e", f"trace={TRACED_CALLS}", "-o", str(out_path),
           *module_command("harness.children.io8_traced_read", kind, TRACED_MESSAGES, MESSAGE_BYTES)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            cwd=ROOT, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=STRACE_TIMEOUT_S)
    finally:
        kill_group(proc.pid)
        proc.wait()
    lines = out_path.read_text().splitlines() if out_path.exists() else []
    begin = next((i for i, line in enumerate(lines) if "IO8-BEGIN" in line), None)
    end = next((i for i, line in enumerate(lines) if "IO8-END" in line), None)
    if proc.returncode != 0 or begin is None or end is None:
        return [], f"strace could not trace the {kind} child here (exit {proc.returncode}): {err.strip()[-300:]}"
    return lines[begin + 1:end], ""


def count_syscalls(lines: list[str]) -> dict:
    """Readiness waits, socket reads (and whether a ready wait came first), io_uring_enter calls."""
    counts = {"waits": 0, "ready_waits": 0, "socket_reads": 0, "reads_after_ready": 0, "io_uring_enter": 0}
    ready_seen = False
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        call, target, result = m.group(1), m.group(3) or "", int(m.group(4))
        if call.startswith("epoll_"):
            counts["waits"] += 1
            if result > 0:
                counts["ready_waits"] += 1
                ready_seen = True
        elif call in ("read", "readv", "recvfrom", "recvmsg") and target.startswith(("UNIX", "TCP", "socket")):
            if result > 0:
                counts["socket_reads"] += 1
                counts["reads_after_ready"] += ready_seen
                ready_seen = False
        elif call == "io_uring_enter":
            counts["io_uring_enter"] += 1
    return counts


def traced_per_message(kind: str, out_path) -> tuple[dict, str]:
    lines, why = trace_child(kind, out_path)
    return ({name: value / TRACED_MESSAGES for name, value in count_syscalls(lines).items()} if not why else {}), why


@pytest.mark.claim("IO8")
@needs_linux
def test_stream_read_is_an_epoll_wait_then_a_recv_syscall(benchmark, evidence, loop, socket_pair, tmp_path):
    kind = aio.kind(loop)
    writer_sock, reader_sock = socket_pair
    reader_sock.setblocking(False)  # as an event loop's sockets are
    reader, writer = loop.run_until_complete(asyncio.open_connection(sock=reader_sock))

    async def one_message():
        loop.call_soon(writer_sock.send, MESSAGE)
        return await reader.readexactly(MESSAGE_BYTES)

    try:
        benchmark.group = "IO8 one message via a stream reader"
        bench_async(benchmark, loop, one_message, rounds=RECV_ROUNDS, batch=RECV_BATCH)
    finally:
        writer.close()
        loop.run_until_complete(writer.wait_closed())
    evidence.condition(loop=kind, traced_messages=TRACED_MESSAGES)
    if shutil.which("strace") is None:
        evidence.not_measured("needs strace to count the syscalls of a read (not installed here)")
    per_message, why = traced_per_message(kind, tmp_path / "loop.trace")
    if why:
        evidence.not_measured(why)
    for name in ("waits", "ready_waits", "reads_after_ready"):
        evidence.figure(f"{name}_per_message", per_message[name], unit="calls")
    completion = None
    if uring.refusal() is None:
        completion, why = traced_per_message("io_uring", tmp_path / "io_uring.trace")
        if why:
            evidence.not_measured(f"the io_uring opposite world could not be traced: {why}")
    else:
        evidence.note(f"io_uring opposite world not traced: {uring.refusal()}")
    evidence.support("socket_read_syscalls_per_message", value=per_message["socket_reads"], op="<",
                     threshold=CALLS_THRESHOLD, unit="calls",
                     why="with AIO the kernel fills the buffer; no recv/read is issued after the event",
                     opposite=Opposite(URING_WORLD, value=completion["socket_reads"]) if completion else None)
    evidence.support("io_uring_enter_per_message", value=per_message["io_uring_enter"], op=">=",
                     threshold=CALLS_THRESHOLD, unit="calls",
                     why="Linux's completion interface is io_uring: each completion is reaped via io_uring_enter",
                     opposite=Opposite(URING_WORLD, value=completion["io_uring_enter"]) if completion else None)
    evidence.settle(benchmark)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(FILE_BYTES))
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd, path.read_bytes()
    finally:
        os.close(fd)


def epoll_accepts(fd) -> str:
    """'accepted', or the errno name epoll_ctl(ADD) refused this descriptor with."""
    with select.epoll() as ep:
        try:
            ep.register(fd, select.EPOLLIN)
        except OSError as exc:
            return f"refused {errno.errorcode.get(exc.errno, exc.errno)}"
        return ACCEPTED


def add_reader_accepts(loop, fd) -> str:
    try:
        loop.add_reader(fd, lambda: None)
        loop.remove_reader(fd)
        return ACCEPTED
    except OSError as exc:
        return f"refused {errno.errorcode.get(exc.errno, exc.errno)}"


def file_reads(loop, benchmark, fd, content) -> dict[str, list]:
    """The file read through run_in_executor (benchmarked) and, where allowed, by io_uring (same rounds)."""
    seen = {"readers": [], "uring_s": []}
    buf = bytearray(FILE_BYTES)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="io8-file"))
        ring = stack.enter_context(uring.Uring()) if uring.refusal() is None else None

        def read_block():
            seen["readers"].append(threading.get_ident())
            return os.pread(fd, FILE_BYTES, 0)

        async def read_file():
            return await loop.run_in_executor(pool, read_block)

        def uring_read():
            if ring:
                t0 = time.perf_counter()
                assert ring.read(fd, buf) == FILE_BYTES and buf == content
                seen["uring_s"].append(time.perf_counter() - t0)

        assert bench_async(benchmark, loop, read_file, rounds=FILE_ROUNDS, setup=uring_read) == content
    return seen


@pytest.mark.claim("IO8")
@needs_linux
def test_epoll_refuses_regular_files_so_file_reads_run_on_threads(benchmark, evidence, loop, data_file, socket_pair):
    fd, content = data_file
    file_verdict, add_reader = epoll_accepts(fd), add_reader_accepts(loop, fd)
    socket_verdict = epoll_accepts(socket_pair[1].fileno())
    benchmark.group = "IO8 file read from the loop (run_in_executor)"
    seen = file_reads(loop, benchmark, fd, content)
    evidence.condition(loop=aio.kind(loop), file_bytes=FILE_BYTES)
    evidence.figure("epoll_on_socket", socket_verdict)
    evidence.figure("helper_threads_used", len(set(seen["readers"]) - {threading.get_ident()}), unit="threads")
    evidence.note("file reads were sent to a thread pool, as asyncio must for files; the helper thread is the "
                  "test's own choice and decides nothing")
    if seen["uring_s"]:
        evidence.figure("io_uring_file_read", unit="s", samples=seen["uring_s"])
    else:
        evidence.note(f"io_uring file read not run: {uring.refusal()}")
    evidence.control("epoll_on_socket", op="==", threshold=ACCEPTED, value=socket_verdict,
                     why="epoll refused the socket control too")
    evidence.support("epoll_on_regular_file", value=file_verdict, op="==", threshold=ACCEPTED,
                     why="a loop can only wait on what epoll accepts; the socket control is " + socket_verdict)
    evidence.support("loop_add_reader_on_file", value=add_reader, op="==", threshold=ACCEPTED,
                     why="an AIO-style loop could wait for a file; this loop's selector refuses it")
    evidence.settle(benchmark)
