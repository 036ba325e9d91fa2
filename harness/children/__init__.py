"""Child programs the experiments run in fresh interpreters (``python -m harness.children.<name>``).

Each is a plain module, linted like the rest of the project, and reports its result with
``emit(obj)``: one line that harness.subproc.Outcome.result() finds and parses. Settings are
passed as command-line arguments, so a result records names and values, never source.
"""
from __future__ import annotations

import json

RESULT_PREFIX = "RESULT-JSON:"


def emit(obj) -> None:
    """Print `obj` as this child's JSON result (flushed at once: a later crash cannot lose it)."""
    print(RESULT_PREFIX + json.dumps(obj), flush=True)
