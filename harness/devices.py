"""A slow "device" in a child process, for the blocking-I/O experiments (IO4, IO5).

Why this exists: this VM has no slow device whose DMA could be watched, so the honest stand-in
is a child process (harness.children.slow_device) that, on request, sleeps L seconds and then
writes N bytes into a pipe or a socket. A thread reading that channel blocks in the kernel as
it would on a device's interrupt path, and the device's own work (the sleep) happens outside
our process.
"""
from __future__ import annotations

import os
import socket
import subprocess

from harness.children.slow_device import pattern
from harness.probes import bytes_queued
from harness.subproc import ROOT, child_env, kill_group, module_command

CHANNELS = ("pipe", "socket")
SOCKET_SNDBUF = 4 << 20  # the device's socket buffer: large enough to hold a whole ready payload
__all__ = ["CHANNELS", "SlowDevice", "pattern"]


class SlowDevice:
    """``with SlowDevice("pipe") as dev:`` a child that, per request, sleeps then writes into our channel."""

    def __init__(self, channel: str):
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; choose one of {', '.join(CHANNELS)}")
        self.channel = channel
        self.sock = None
        if channel == "pipe":
            self.fd, theirs = os.pipe()
        else:
            self.sock, other = socket.socketpair()
            other.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF)
            self.fd, theirs = self.sock.fileno(), other.detach()
        try:
            self.proc = subprocess.Popen(
                module_command("harness.children.slow_device", theirs), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, pass_fds=(theirs,), env=child_env(), cwd=ROOT, start_new_session=True,
            )
        except BaseException:
            self._close_reader()
            raise
        finally:
            os.close(theirs)  # only the child writes: its exit then reads as EOF here
        try:
            self.request(0, 1, ack=True)  # the child is up once its byte has been written
            self.read_into(bytearray(1), 1)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> SlowDevice:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, delay: float, nbytes: int, ack: bool = False) -> None:
        """Ask for nbytes after delay seconds; with ack, block until the child's last write returned."""
        self.proc.stdin.write(f"{delay} {nbytes} {int(ack)}\n".encode())
        self.proc.stdin.flush()
        if ack and self.proc.stdout.readline() != b"done\n":
            raise EOFError(f"the device (pid {self.proc.pid}) ended before writing {nbytes} bytes")

    def read_into(self, buf: bytearray, nbytes: int) -> None:
        """A blocking read of exactly nbytes (recv with MSG_WAITALL on a socket, read on a pipe)."""
        if self.sock is not None:
            got = self.sock.recv_into(buf, nbytes, socket.MSG_WAITALL)
        else:
            view, got = memoryview(buf), 0
            while got < nbytes:
                n = os.readv(self.fd, [view[got:nbytes]])
                if n == 0:
                    break
                got += n
        if got != nbytes:
            raise EOFError(f"device delivered {got} of {nbytes} bytes")

    def poll_into(self, buf: bytearray, nbytes: int) -> None:
        """Like read_into, but by polling: non-blocking reads in a loop until nbytes have come (a control)."""
        view, got = memoryview(buf), 0
        os.set_blocking(self.fd, False)
        try:
            while got < nbytes:
                try:
                    n = os.readv(self.fd, [view[got:nbytes]])
                except BlockingIOError:
                    continue
                if n == 0:
                    raise EOFError(f"device delivered {got} of {nbytes} bytes")
                got += n
        finally:
            os.set_blocking(self.fd, True)

    def queued(self) -> int:
        """Bytes the device has written that wait in the kernel, unread (FIONREAD)."""
        return bytes_queued(self.fd)

    def _close_reader(self):
        if self.sock is not None:
            self.sock.close()
        else:
            os.close(self.fd)

    def close(self):
        try:
            self.proc.stdin.close()  # EOF: the child's loop ends
        except OSError:  # the child is gone already (broken pipe on the final flush)
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.proc.pid)  # it runs in its own session: nothing else would end it
            self.proc.wait()
        self.proc.stdout.close()
        self._close_reader()
