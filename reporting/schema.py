"""What a run file must hold, checked before anything is written.

The verdict states come from harness.catalogue (the one list); a field of the wrong shape
raises InputError naming the file, the benchmark and the field, which report.py prints as
one line before exiting 2.
"""
from __future__ import annotations

from harness.catalogue import STATES, VERDICTS

ROLES = ("support", "caveat")
OPS = ("<", "<=", ">", ">=", "==", "!=")
GIL_STATES = ("on", "off", "re-enabled")
ENV_FIELDS = {"implementation": str, "python": str, "free_threaded": bool, "gil": str, "jit": str,
              "cpu_model": str, "cores": int, "cpus_available": int, "kernel": str, "machine": str,
              "system": str}


class InputError(Exception):
    """Bad input; the message names the file and says what is wrong with it."""


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar(v) -> bool:
    return isinstance(v, (int, float, str, bool))


class _Where:
    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, why: str):
        raise InputError(f"{self.where}: {field}: {why}")

    def need(self, record: dict, field: str, test, what: str, prefix: str = "extra_info"):
        if field not in record:
            self.fail(f"{prefix}.{field}", "missing")
        if not test(record[field]):
            self.fail(f"{prefix}.{field}", f"must be {what}, got {record[field]!r:.60}")


def environment(env, where: str) -> dict:
    w = _Where(where)
    if not isinstance(env, dict):
        w.fail("environment", "must be an object")
    for name, kind in ENV_FIELDS.items():
        w.need(env, name, lambda v, k=kind: isinstance(v, k) and (k is not int or not isinstance(v, bool)),
               kind.__name__, "environment")
    if env["gil"] not in GIL_STATES:
        w.fail("environment.gil", f"unknown GIL state {env['gil']!r}; known: {', '.join(GIL_STATES)}")
    return env


def check(c, w: _Where, prefix: str) -> None:
    if not isinstance(c, dict):
        w.fail(prefix, "must be an object")
    w.need(c, "name", lambda v: isinstance(v, str) and v, "a name", prefix)
    w.need(c, "value", _scalar, "a number, text or true/false", prefix)
    w.need(c, "op", lambda v: v in OPS, f"one of {' '.join(OPS)}", prefix)
    w.need(c, "threshold", _scalar, "a number, text or true/false", prefix)
    w.need(c, "unit", lambda v: isinstance(v, str), "text", prefix)
    w.need(c, "role", lambda v: v in ROLES, f"one of {', '.join(ROLES)}", prefix)
    w.need(c, "why", lambda v: isinstance(v, str), "text", prefix)
    w.need(c, "passed", lambda v: v is None or isinstance(v, bool), "true, false or null (undecided)", prefix)
    if c.get("interval") is not None:
        w.need(c, "interval", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_number, v)),
               "[low, high]", prefix)
    if c.get("n") is not None:
        w.need(c, "n", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a count", prefix)
    if c.get("opposite") is not None:
        opposite(c["opposite"], w, f"{prefix}.opposite")


def opposite(o, w: _Where, prefix: str) -> None:
    """The same figure in the world with the other outcome, judged by the check's op and threshold."""
    if not isinstance(o, dict):
        w.fail(prefix, "must be an object")
    w.need(o, "label", lambda v: isinstance(v, str) and v, "a label", prefix)
    w.need(o, "value", _scalar, "a number, text or true/false", prefix)
    w.need(o, "passed", lambda v: v is None or isinstance(v, bool), "true, false or null (undecided)", prefix)
    if o.get("interval") is not None:
        w.need(o, "interval", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_number, v)),
               "[low, high]", prefix)
    if o.get("n") is not None:
        w.need(o, "n", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a count", prefix)


def figure(name: str, f, w: _Where) -> None:
    prefix = f"figures.{name}"
    if not isinstance(f, dict):
        w.fail(prefix, "must be an object")
    w.need(f, "value", _scalar, "a number, text or true/false", prefix)
    w.need(f, "unit", lambda v: isinstance(v, str), "text", prefix)
    if ("q1" in f) != ("q3" in f):
        w.fail(prefix, "has one quartile without the other (q1 and q3 go together)")
    for key in ("q1", "q3", "min", "max"):
        if key in f:
            w.need(f, key, _number, "a number", prefix)
    if "n" in f:
        w.need(f, "n", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a count", prefix)
    if f.get("interval") is not None:
        w.need(f, "interval", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_number, v)),
               "[low, high]", prefix)
    if "samples" in f:
        w.need(f, "samples", lambda v: isinstance(v, list) and all(map(_number, v)), "a list of numbers", prefix)
    if "method" in f:
        w.need(f, "method", lambda v: isinstance(v, str), "text", prefix)


def evidence(info, where: str) -> dict:
    """One benchmark's extra_info (or a not-measured part's evidence), checked field by field."""
    w = _Where(where)
    if not isinstance(info, dict):
        w.fail("extra_info", "must be an object")
    w.need(info, "claim", lambda v: isinstance(v, str) and v, "a claim ID")
    w.need(info, "part", lambda v: isinstance(v, str), "text")
    w.need(info, "verdict", lambda v: v in STATES, f"a verdict state ({', '.join(STATES)})")
    w.need(info, "expected", lambda v: v in VERDICTS or v == "", f"a verdict ({', '.join(VERDICTS)})")
    w.need(info, "measured_support", lambda v: isinstance(v, bool), "true or false")
    w.need(info, "checks", lambda v: isinstance(v, list), "a list")
    for i, c in enumerate(info["checks"]):
        check(c, w, f"checks[{i}]")
    w.need(info, "figures", lambda v: isinstance(v, dict), "an object")
    for name, f in info["figures"].items():
        figure(name, f, w)
    w.need(info, "notes", lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of text")
    w.need(info, "conditions", lambda v: isinstance(v, dict), "an object")
    w.need(info, "settings", lambda v: isinstance(v, dict), "an object")
    w.need(info, "not_measured_reason", lambda v: isinstance(v, str), "text")
    return info


def not_measured(entry, where: str) -> dict:
    w = _Where(where)
    if not isinstance(entry, dict):
        w.fail("not_measured entry", "must be an object")
    for field in ("claim", "part", "reason"):
        w.need(entry, field, lambda v: isinstance(v, str), "text", "not_measured")
    if entry.get("evidence") is not None:
        evidence(entry["evidence"], f"{where} (evidence)")
    return entry


def benchmark(bench, where: str) -> dict:
    w = _Where(where)
    if not isinstance(bench, dict) or not isinstance(bench.get("name"), str):
        w.fail("benchmark", "lacks a 'name'")
    if not isinstance(bench.get("stats"), dict):
        w.fail(f"benchmark {bench['name']}", "lacks 'stats'")
    params = bench.get("params")
    if params is not None and not isinstance(params, dict):
        w.fail(f"benchmark {bench['name']}.params", "must be an object or null")
    info = bench.get("extra_info") or {}
    if "claim" in info:
        evidence(info, f"{where}: {bench['name']}")
    return bench
