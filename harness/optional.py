"""Optional pieces of the suite (uvloop, msgpack, liburing): what is missing here, and why.

They have no wheel for every interpreter (free-threaded CPython 3.13 has none for liburing,
and msgpack and uvloop build from source there), so they are installed one by one from
requirements-optional.txt, and a failed install never stops the others. The install step
records each outcome in OPTIONAL_STATUS; an experiment that needs a missing piece skips with
that recorded reason (and the run records the skip against its claim).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

# Written by the install step (Makefile's venv target, via tools/install_optional.py) next to the venv.
OPTIONAL_STATUS = Path(sys.prefix) / "optional-status.json"


def missing(module: str) -> str | None:
    """Why `module` cannot be imported here, or None when it can."""
    if importlib.util.find_spec(module) is not None:
        return None
    try:
        status = json.loads(OPTIONAL_STATUS.read_text()).get(module)
    except (OSError, ValueError):
        status = None
    why = f"its install failed: {status}" if status else "it is not installed in this environment"
    return f"needs the optional package {module!r}, and {why}"


def needs(module: str):
    """A skip marker for experiments that need `module`, carrying the recorded reason."""
    reason = missing(module)
    return pytest.mark.skipif(reason is not None, reason=reason or "")

