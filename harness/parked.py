"""Threads started ahead of a clock and parked on a gate until go(): TH4 and TH5 time only what follows.

Starting a thread costs far more than the work some experiments time, so the threads are
started (and reach the gate) before the clock runs; go() releases them all at once and joins
them. A half-built set (a failed start part-way) is released and joined by close().
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


class ParkedThreads:
    """One thread per argument tuple, each running fn(*args) once released."""

    def __init__(self, fn: Callable, arg_tuples: Iterable[tuple], name: str = "parked"):
        self._gate = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(fn, args), name=f"{name}-{i}")
                        for i, args in enumerate(arg_tuples)]
        try:
            for t in self.threads:
                t.start()
        except BaseException:
            self.close()
            raise

    def _run(self, fn, args) -> None:
        self._gate.wait()
        try:
            fn(*args)
        except BaseException as exc:  # re-raised by go() in the caller's thread
            self.errors.append(exc)

    def release(self) -> None:
        """Open the gate without waiting (for callers that time something while the threads run)."""
        self._gate.set()

    def join(self, timeout: float | None = None) -> None:
        for t in self.threads:
            if t.ident is not None:  # started (join on a thread never started raises)
                t.join(timeout)

    def go(self) -> None:
        """Release the threads, wait for all of them, and raise the first error one of them met."""
        self.release()
        self.join()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        """Release and join whatever was started; for cleanup paths."""
        self.release()
        self.join(timeout=10)
