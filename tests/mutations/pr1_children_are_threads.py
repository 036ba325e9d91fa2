"""PR1: a "spawn" child is really a thread of the parent, so its writes land in the parent's memory."""
import multiprocessing
import multiprocessing.connection
import os
import threading

_original = multiprocessing.get_context


class _ThreadChild(threading.Thread):
    pid, exitcode = 0, 0

    def __init__(self, target, args):
        # A process gets its own copy of the pipe's end, which the parent then closes; so does this thread.
        sender, *rest = args
        super().__init__(target=target, args=(multiprocessing.connection.Connection(os.dup(sender.fileno())), *rest))

    def kill(self):
        pass


class _ThreadContext:
    Pipe = staticmethod(multiprocessing.Pipe)
    Process = _ThreadChild

    @staticmethod
    def get_start_method():
        return "spawn"


def _get_context(method=None):
    return _ThreadContext() if method == "spawn" else _original(method)


def pytest_configure(config):
    multiprocessing.get_context = _get_context
