"""Run child programs (harness.children.*) in fresh interpreters: for memory figures and for crashes.

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
from dataclasses import dataclass

from harness.children import RESULT_PREFIX

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group (a child started with start_new_session and all it started)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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


def child_env(extra: dict | None = None) -> dict:
    """The environment for a child interpreter: the project importable, pytest's faulthandler off."""
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    if extra:
        env.update(extra)
    return env


def module_command(module: str, *args) -> list[str]:
    """The command line that runs `module` (e.g. harness.children.crash_threads) in a fresh interpreter."""
    return [sys.executable, "-X", "faulthandler", "-m", module, *map(str, args)]


def run_module(module: str, *args, timeout: float = 60.0, env: dict | None = None) -> Outcome:
    """Run ``python -m module args...``, wait at most `timeout` s, kill its whole group on expiry.

    Inside the module, ``harness.children.emit(obj)`` prints obj as the child's JSON result.
    """
    proc = subprocess.Popen(
        module_command(module, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(env), cwd=ROOT, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        out, err = proc.communicate()
        raise TimeoutError(f"{module} exceeded {timeout} s and was killed; stderr:\n{err[-2000:]}") from None
    finally:
        kill_group(proc.pid)  # grandchildren it may have left behind
    return Outcome(proc.returncode, out, err)
