"""The run's scale (``--scale quick|full``), readable at import time.

Experiments size their parametrize lists at import, before any fixture exists, so the
root conftest stores the scale here in pytest_configure, which runs before collection.
"""
from __future__ import annotations

SCALES = ("quick", "full")
_current = "quick"


def set_current(scale: str) -> None:
    global _current
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    _current = scale


def current() -> str:
    return _current


def pick(quick, full):
    """The value for the current scale: `quick` by default, `full` under --scale full."""
    return full if _current == "full" else quick
