"""io_uring through the liburing package: the completion-based reference IO8 compares asyncio with.

Used by IO8's experiment and by its traced child (harness.children.io8_traced_read), which
must read through a ring exactly as the experiment does; hence one module for both. liburing
is optional (no wheel for free-threaded 3.13), and the kernel may refuse rings
(kernel.io_uring_disabled, seccomp in containers): ``refusal()`` says why, once.
"""
from __future__ import annotations

import functools
import os
import sys

COMPLETION_TIMEOUT_S = 5.0  # a completion that takes longer than this is a bug, not a measurement
POLLER = "anon_inode:[io_uring]"  # what /proc/self/fd shows for a ring


@functools.cache
def refusal() -> str | None:
    """Why io_uring cannot be used here, or None when a ring can be set up."""
    if not sys.platform.startswith("linux"):
        return "io_uring is Linux-only"
    from harness.optional import missing

    why = missing("liburing")
    if why:
        return why
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            if f.read().strip() == "2":
                return "kernel.io_uring_disabled = 2"
    except OSError:
        pass  # older kernels have no such switch
    # The first ring is set up in a child: a liburing build that uses an instruction this CPU
    # lacks dies there (SIGILL), never in pytest.
    import subprocess

    probe = ("import liburing; r = liburing.Ring(); liburing.io_uring_queue_init(2, r); "
             "liburing.io_uring_queue_exit(r)")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "setting up an io_uring ring took over 30 s in a probe child"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return f"liburing cannot set up a ring here (probe child: {last[:160]})"
    return None


class Uring:
    """A small ring: hand the kernel a buffer, wait (bounded) until it reports the read complete."""

    def __init__(self, entries: int = 8):
        import liburing

        self.L = liburing
        self.ring, self.cqe = liburing.Ring(), liburing.Cqe()
        liburing.io_uring_queue_init(entries, self.ring)
        self.timeout = liburing.timespec(COMPLETION_TIMEOUT_S)

    def close(self) -> None:
        self.L.io_uring_queue_exit(self.ring)

    def __enter__(self) -> Uring:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _submit_and_complete(self, then=None) -> int:
        self.L.io_uring_submit(self.ring)
        if then is not None:
            then()
        self.L.io_uring_wait_cqe_timeout(self.ring, self.cqe, self.timeout)
        res = self.cqe[0].res
        self.L.io_uring_cq_advance(self.ring, 1)
        if res < 0:
            raise OSError(-res, os.strerror(-res))
        return res

    def recv(self, sock, buf, then=None) -> int:
        """Hand the kernel `buf`, run `then` (which sends the data), wait until `buf` is filled."""
        self.L.io_uring_prep_recv(self.L.io_uring_get_sqe(self.ring), sock.fileno(), buf, 0)
        return self._submit_and_complete(then)

    def read(self, fd: int, buf, offset: int = 0) -> int:
        self.L.io_uring_prep_read(self.L.io_uring_get_sqe(self.ring), fd, buf, offset)
        return self._submit_and_complete()
