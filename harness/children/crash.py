"""How the crash experiments' children crash, and how they name the way a process ended.

Shared by harness.children.crash_supervisor, crash_pool, crash_threads, interp_crash and
coro_crash (PR2, TH2, IN2, CO8), so that "segfault" means the same native crash in a process, a
pool worker, a thread, an interpreter and a task.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

KINDS = ("segfault", "abort", "exit_nonzero")
EXIT_CODE = 3  # what exit_nonzero exits with
# What a crashing host writes (os.write: no buffer to lose) per heartbeat, and just before its unit crashes
# (harness.crashhosts reads both).
BEAT, CRASH = "BEAT", "CRASH"


def crash(kind: str) -> None:
    """Crash the calling process (or thread) in the named way."""
    if kind == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif kind == "abort":
        os.abort()
    elif kind == "exit_nonzero":
        sys.exit(EXIT_CODE)
    raise ValueError(f"unknown crash {kind!r}; known: {', '.join(KINDS)}")


def status(code: int | None) -> str:
    """An exit code as the experiments spell it: 'SIGSEGV' for a signal, 'exit N' otherwise."""
    return signal.Signals(-code).name if code is not None and code < 0 else f"exit {code}"
