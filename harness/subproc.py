"""Run Python snippets in fresh interpreters: for memory figures and for crashes.

Memory is measured in a fresh process so that nothing pytest allocated counts, and crashing
code runs in a child so that it can never take pytest down. Each child gets its own process
group, so a timeout kills the child *and* anything it started; no child outlives the call.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

RESULT_PREFIX = "RESULT-JSON:"


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def signal_name(self) -> str | None:
        """The signal that killed the child (SIGSEGV, SIGABRT...), or None if it exited."""
        if self.returncode < 0:
            return signal.Signals(-self.returncode).name
        return None

    def result(self):
        """The JSON object the child printed with emit(), or a clear error if it printed none."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])
        raise RuntimeError(
            f"child printed no result (exit {self.returncode}); stderr:\n{self.stderr[-2000:]}"
        )


def run_python(code: str, *, timeout: float = 60.0, args: tuple = (), env: dict | None = None) -> Outcome:
    """Run `code` in `python -c` (this interpreter), wait at most `timeout` s, kill on expiry.

    Inside `code`, ``emit(obj)`` prints obj as the child's JSON result.
    """
    prelude = (
        "import json as _json\n"
        f"def emit(obj): print({RESULT_PREFIX!r} + _json.dumps(obj), flush=True)\n"
    )
    child_env = dict(os.environ)
    child_env.pop("PYTHONFAULTHANDLER", None)
    if env:
        child_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", prelude + textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        raise TimeoutError(f"child exceeded {timeout} s and was killed; stderr:\n{err[-2000:]}") from None
    finally:
        _kill_group(proc.pid)  # grandchildren it may have left behind
    return Outcome(proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
