"""Optional pieces of the suite (uvloop, msgpack, liburing, the PEP 734 backport): what is missing here, and why.

They have no wheel for every interpreter (free-threaded CPython 3.13 has none for liburing,
and msgpack and uvloop build from source there), so they are installed one by one from
requirements-optional.txt, and a failed install never stops the others. The install step
records each outcome in OPTIONAL_STATUS; an experiment that needs a missing piece skips with
that recorded reason (and the run records the skip against its claim).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import environment

# Written by the install step (Makefile's venv target, via tools/install_optional.py) next to the venv.
OPTIONAL_STATUS = Path(sys.prefix) / "optional-status.json"
# The import name of each optional distribution whose name does not give it (normalised: - and . -> _).
# interpreters-pep-734 is PEP 734's backport (harness/interpreters.py); interpreters-3-12 its C half on 3.12.
IMPORT_NAMES = {"interpreters_pep_734": "interpreters_backport", "interpreters_3_12": "_interpreters"}
# How the install step words a pin it skipped because its environment marker is false here.
SKIPPED = "not installed: its environment marker"


@functools.cache
def _reenables_gil(module: str) -> bool:
    """True when importing `module` turns the GIL back on in this (free-threaded) interpreter."""
    code = f"import sys, {module}; print(sys._is_gil_enabled())"
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() == "True"


def missing(module: str) -> str | None:
    """Why `module` cannot be used here, or None when it can."""
    if importlib.util.find_spec(module) is not None:
        if environment.gil_state() == "off" and _reenables_gil(module):
            return (f"importing {module!r} would turn the GIL back on in this free-threaded interpreter "
                    "(it has not declared free-threading support), and every later experiment would then "
                    "measure a GIL build")
        return None
    try:
        status = json.loads(OPTIONAL_STATUS.read_text()).get(module)
    except (OSError, ValueError):
        status = None
    if status and status.startswith(SKIPPED):
        return f"needs the optional package {module!r}, which is {status}"
    why = f"its install failed: {status}" if status else "it is not installed in this environment"
    return f"needs the optional package {module!r}, and {why}"


def needs(module: str):
    """A skip marker for experiments that need `module`, carrying the recorded reason."""
    reason = missing(module)
    return pytest.mark.skipif(reason is not None, reason=reason or "")

