"""What a run file must hold, checked before anything is written.

The record's fields are defined once, in harness/record.py; this module applies its parser to
a run file's pieces and adds the shape of pytest-benchmark's own entries. A field of the wrong
shape raises InputError naming the file, the benchmark and the field, which report.py prints
as one line before exiting 2.
"""
from __future__ import annotations

from harness import record


class InputError(Exception):
    """Bad input; the message names the file and says what is wrong with it."""


def _parse(cls, data, where: str, prefix: str):
    try:
        return record.parse(cls, data, where, prefix)
    except record.RecordError as exc:
        raise InputError(str(exc)) from None


def environment(env, where: str) -> dict:
    return _parse(record.Environment, env, where, "environment")


def evidence(info, where: str) -> dict:
    """One benchmark's extra_info (or a not-measured part's evidence), checked field by field."""
    return _parse(record.Part, info, where, "extra_info")


def not_measured(entry, where: str) -> dict:
    return _parse(record.NotMeasured, entry, where, "not_measured")


def benchmark(bench, where: str) -> dict:
    """One pytest-benchmark entry: its name, stats and params, and the suite's record in extra_info."""
    if not isinstance(bench, dict) or not isinstance(bench.get("name"), str):
        raise InputError(f"{where}: benchmark: lacks a 'name'")
    if not isinstance(bench.get("stats"), dict):
        raise InputError(f"{where}: benchmark {bench['name']}: lacks 'stats'")
    params = bench.get("params")
    if params is not None and not isinstance(params, dict):
        raise InputError(f"{where}: benchmark {bench['name']}.params: must be an object or null")
    info = bench.get("extra_info") or {}
    if "claim" in info:
        evidence(info, f"{where}: {bench['name']}")
    return bench
