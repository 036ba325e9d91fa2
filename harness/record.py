"""The run record's format version: what a run's JSON says it is, and how a reader tells.

Every run's JSON carries a top-level ``suite_format`` (an int), written by the experiments'
conftest from SUITE_FORMAT. Readers never guess a format from which keys are present:

- format 1: the runs published before the version was stated. A file with an ``environment``
  key and no ``suite_format`` is format 1.
- format 2: the same fields as format 1, with ``suite_format`` stated.

A file with neither is older than the environment key and is ignored by the report (with a
warning); a file that names a format this code does not know is refused.
"""
from __future__ import annotations

SUITE_FORMAT = 2
KNOWN_FORMATS = (1, 2)


class FormatError(ValueError):
    pass


def format_of(data: dict) -> int | None:
    """The run's format; None for a run older than the environment key. Raises FormatError if unknown."""
    if "suite_format" not in data:
        return 1 if "environment" in data else None
    value = data["suite_format"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"suite_format must be an int, got {value!r:.40}")
    if value not in KNOWN_FORMATS:
        raise FormatError(f"suite_format {value} is not known here (known: {', '.join(map(str, KNOWN_FORMATS))}); "
                          "update the project to read it")
    return value
