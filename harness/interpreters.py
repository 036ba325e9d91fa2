"""Several interpreters in one process (PEP 684, PEP 734): which module offers them here, and whether they work.

Since CPython 3.12 each interpreter may have its own GIL (PEP 684). PEP 734's API is the
stdlib's concurrent.interpreters from 3.14 on; on 3.12 and 3.13 it comes from the PyPI
backport interpreters-pep-734 (requirements-optional.txt), imported as
interpreters_backport.interpreters, which on 3.13 uses the stdlib's private _interpreters and
on 3.12 needs the C modules of interpreters-3-12. That backport is young: with
interpreters-3-12 on CPython 3.12.1 its import dies by SIGSEGV, and on 3.13.0 its
InterpreterPoolExecutor hung mapping a function defined in __main__ (the suite never uses it).

So nothing here touches an interpreter in pytest's process: ``refusal()`` imports the
module, creates an interpreter, runs a statement in it and closes it in a probe child
(harness.children.interp_probe) under a timeout, and says why that failed (a hang, a signal,
an exception), once per run. Experiments run everything that touches interpreters in
children too; ``load()`` is for those children.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import platform
import sys

from harness.subproc import run_module

MODULES = ("concurrent.interpreters", "interpreters_backport.interpreters")  # tried in this order
BACKPORT = "interpreters_backport"  # the backport's import name (distribution interpreters-pep-734)
MIN_PYTHON = (3, 12)  # PEP 684: an interpreter with its own GIL
PROBE_TIMEOUT_S = 30.0  # import, create, exec and close take well under a second where they work
STAGE = "STAGE"  # the probe child's progress lines: what it was doing when it died


def load():
    """The PEP 734 module (stdlib first, then the backport). For child processes only: on some
    interpreters importing it crashes the process (see the module's docstring)."""
    for name in MODULES:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # the module exists but something it needs is missing: that is the reason
    raise ModuleNotFoundError(f"none of {', '.join(MODULES)} can be imported")


def _unavailable() -> str | None:
    """Why no PEP 734 module can exist here, without running anything."""
    if platform.python_implementation() != "CPython":
        return f"interpreters (PEP 684, PEP 734) are a CPython feature; this is {platform.python_implementation()}"
    if sys.version_info < MIN_PYTHON:
        return (f"interpreters with a GIL each (PEP 684) and PEP 734's API need CPython "
                f"{'.'.join(map(str, MIN_PYTHON))} or newer; this is CPython {platform.python_version()}")
    if importlib.util.find_spec("concurrent.interpreters") is None and importlib.util.find_spec(BACKPORT) is None:
        from harness.optional import missing  # imports pytest: only here, never in the children

        return missing(BACKPORT)
    return None


@functools.cache
def _probe() -> tuple[str | None, dict]:
    why = _unavailable()
    if why:
        return why, {}
    try:
        outcome = run_module("harness.children.interp_probe", timeout=PROBE_TIMEOUT_S)
    except TimeoutError:
        return (f"the interpreters probe (import, create, exec, close) hung past {PROBE_TIMEOUT_S:g} s in a "
                "child and was killed"), {}
    lines = outcome.stdout.splitlines()
    stages = [line.split(" ", 1)[1] for line in lines if line.startswith(STAGE + " ")]
    stage = stages[-1] if stages else "starting"
    if outcome.returncode != 0:
        how = f"died by {outcome.signal_name}" if outcome.signal_name else f"exited {outcome.returncode}"
        errors = [line.strip() for line in outcome.stderr.splitlines() if line.strip()]
        first = next((e for e in errors if e.startswith("Fatal Python error")), None)
        last = first or (errors[-1] if errors else "no message")
        return f"the interpreters probe child {how} while {stage}: {last[:200]}", {}
    return None, outcome.result()


def refusal() -> str | None:
    """Why interpreters cannot be measured here, or None when the probe created and ran one."""
    return _probe()[0]


def info() -> dict:
    """What the probe found: the module it used and the interpreter's GIL config ("own", "shared")."""
    return _probe()[1]
