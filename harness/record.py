"""The run record: what one settled part, one not-measured part and one environment hold.

This module is the one place that names the record's fields. harness/evidence.py writes it,
harness/plugin.py adds the not-measured parts and the environment, report.py validates
what it reads through ``parse``, and the project's tests build their synthetic runs from the
same dataclasses. ``claim_verdict`` is the one function that turns a claim's records into its
verdict, for the run summary, the report and the stability table alike.

Format versions. Every run's JSON carries a top-level ``suite_format`` (an int), written from
SUITE_FORMAT. Readers never guess a format from which keys are present:

- format 1: the runs published before the version was stated. A file with an ``environment``
  key and no ``suite_format`` is format 1; its checks carry no ``opposite``.
- format 2: the same fields, with ``suite_format`` stated and each check's ``opposite``; runs
  made since the scaling curves also carry a top-level ``scale`` ("quick" or "full"). A run
  without it reads the scale from its parts' settings, and is quick when none says.

A file with neither is older than the environment key and is ignored by the report (with a
warning); a file that names a format this code does not know is refused.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from harness.catalogue import NOT_MEASURED, STATES, VERDICTS, combine

# Times are recorded in seconds, always (a unit may say how: "s per descriptor (batched waits)");
# the report scales them for reading. A record in ms, µs or ns is refused when it is written.
SCALED_TIME_UNITS = ("ms", "us", "µs", "ns")
SUITE_FORMAT = 2
KNOWN_FORMATS = (1, 2)
ROLES = ("support", "caveat")
OPS = ("<", "<=", ">", ">=", "==", "!=")
GIL_STATES = ("on", "off", "re-enabled")


class FormatError(ValueError):
    pass


class RecordError(ValueError):
    """A field of the wrong shape; the message names where, the field and what it must be."""


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


# --- what a field may hold ------------------------------------------------------------------------
def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar(v) -> bool:
    return isinstance(v, (int, float, str, bool))


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(map(_number, v))


def _text(v) -> bool:
    return isinstance(v, str)


def _named(v) -> bool:
    return isinstance(v, str) and bool(v)


def _rule(test, what: str, default=MISSING, record=None, many: str = ""):
    """A field's metadata: its test and how to say it; `record`/`many` for nested records."""
    meta = {"test": test, "what": what, "record": record, "many": many}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=type(default), metadata=meta)
    return field(default=default, metadata=meta)


SCALAR = "a number, text or true/false"
PASSED = "true, false or null (undecided)"


@dataclass
class OppositeOutcome:
    """The same figure measured where the outcome should differ, judged by its check's op and threshold."""
    label: str = _rule(_named, "a label")
    value: Any = _rule(_scalar, SCALAR)
    passed: bool | None = _rule(lambda v: v is None or isinstance(v, bool), PASSED)
    interval: list | None = _rule(_pair, "[low, high]", default=None)
    n: int | None = _rule(_count, "a count", default=None)


@dataclass
class Check:
    name: str = _rule(_named, "a name")
    value: Any = _rule(_scalar, SCALAR)
    op: str = _rule(lambda v: v in OPS, f"one of {' '.join(OPS)}")
    threshold: Any = _rule(_scalar, SCALAR)
    unit: str = _rule(_text, "text")
    role: str = _rule(lambda v: v in ROLES, f"one of {', '.join(ROLES)}")  # "support" or "caveat"
    why: str = _rule(_text, "text")
    passed: bool | None = _rule(lambda v: v is None or isinstance(v, bool), PASSED)  # None: undecided
    interval: list | None = _rule(_pair, "[low, high]", default=None)  # of the median, when decided over samples
    n: int | None = _rule(_count, "a count", default=None)  # samples behind the interval
    looks: int | None = _rule(_count, "a count", default=None)  # looks of the stopping rule up to n (1: fixed n)
    level: float | None = _rule(lambda v: _number(v) and 0 < v <= 1, "a level in (0, 1]", default=None)
    opposite: OppositeOutcome | None = _rule(lambda v: isinstance(v, dict), "an object", default=None,
                                          record=OppositeOutcome)

    def describe(self) -> str:
        state = {True: "passed", False: "failed", None: "undecided"}[self.passed]
        spread = ""
        if self.interval is not None:
            lo, hi = self.interval
            spread = f" (95% interval {fmt_value(lo)}-{fmt_value(hi)}, n={self.n})"
        text = (f"{self.role} check {self.name!r} = {fmt_value(self.value)}{unit_suffix(self.unit)}{spread}, "
                f"needs {self.op} {fmt_value(self.threshold)}{unit_suffix(self.unit)} ({state})")
        if self.opposite is not None:
            o = self.opposite
            state = {True: "passed", False: "failed", None: "undecided"}[o.passed]
            text += f"; opposite world ({o.label}) = {fmt_value(o.value)}{unit_suffix(self.unit)} ({state})"
        return text


@dataclass
class Figure:
    """A measured figure: one value, or the median of samples with their spread (absent keys are not written)."""
    value: Any = _rule(_scalar, SCALAR)
    unit: str = _rule(_text, "text")
    q1: float | None = _rule(_number, "a number", default=None)
    q3: float | None = _rule(_number, "a number", default=None)
    min: float | None = _rule(_number, "a number", default=None)
    max: float | None = _rule(_number, "a number", default=None)
    n: int | None = _rule(_count, "a count", default=None)
    interval: list | None = _rule(_pair, "[low, high]", default=None)
    samples: list | None = _rule(lambda v: isinstance(v, list) and all(map(_number, v)), "a list of numbers",
                                 default=None)
    method: str | None = _rule(_text, "text", default=None)

    def __post_init__(self):
        if (self.q1 is None) != (self.q3 is None):
            raise RecordError("has one quartile without the other (q1 and q3 go together)")


@dataclass
class Part:
    """One settled test: a part of a claim, with its verdict, checks and figures."""
    claim: str = _rule(_named, "a claim ID")
    part: str = _rule(_text, "text")
    verdict: str = _rule(lambda v: v in STATES, f"a verdict state ({', '.join(STATES)})")
    expected: str = _rule(lambda v: v in VERDICTS or v == "", f"a verdict ({', '.join(VERDICTS)})")
    measured_support: bool = _rule(lambda v: isinstance(v, bool), "true or false")
    checks: list[Check] = _rule(lambda v: isinstance(v, list), "a list", record=Check, many="list")
    figures: dict[str, Figure] = _rule(lambda v: isinstance(v, dict), "an object", record=Figure, many="dict")
    notes: list[str] = _rule(lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of text")
    conditions: dict = _rule(lambda v: isinstance(v, dict), "an object")
    settings: dict = _rule(lambda v: isinstance(v, dict), "an object")
    not_measured_reason: str = _rule(_text, "text")


@dataclass
class NotMeasured:
    """A part skipped here, with the reason and the figures that showed why (when it measured any)."""
    claim: str = _rule(_text, "text")
    part: str = _rule(_text, "text")
    reason: str = _rule(_text, "text")
    nodeid: str = _rule(_text, "text", default="")
    evidence: Part | None = _rule(lambda v: isinstance(v, dict), "an object", default=None, record=Part)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class Environment:
    """The environment key (harness.environment.key): what a run was measured on."""
    implementation: str = _rule(_text, "str")
    python: str = _rule(_text, "str")
    free_threaded: bool = _rule(lambda v: isinstance(v, bool), "bool")
    gil: str = _rule(lambda v: v in GIL_STATES, f"a GIL state ({', '.join(GIL_STATES)})")
    jit: str = _rule(_text, "str")
    cpu_model: str = _rule(_text, "str")
    cores: int = _rule(_int, "int")
    cpus_available: int = _rule(_int, "int")
    kernel: str = _rule(_text, "str")
    machine: str = _rule(_text, "str")
    system: str = _rule(_text, "str")


def check_unit(unit: str) -> str:
    """`unit`, unless it is a scaled time unit (ms, us, µs, ns): records hold seconds."""
    head = unit.split(" ", 1)[0].split("/", 1)[0]
    if head in SCALED_TIME_UNITS:
        raise ValueError(f"unit {unit!r}: record times in seconds (unit 's'); the report scales them")
    return unit


# --- writing and reading --------------------------------------------------------------------------
def to_json(record) -> dict:
    """The record as it goes into a run's JSON; a Figure's absent keys are left out."""
    def strip(obj):
        if isinstance(obj, Figure):
            return {k: strip(v) for k, v in ((f.name, getattr(obj, f.name)) for f in fields(obj)) if v is not None}
        if dataclasses.is_dataclass(obj):
            return {f.name: strip(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()}
        return obj
    return strip(record)


def parse(cls, data, where: str, prefix: str):
    """`data` checked field by field against `cls`; returns it unchanged, or raises RecordError."""
    def fail(name: str, why: str):
        raise RecordError(f"{where}: {name}: {why}")

    if not isinstance(data, dict):
        fail(prefix, "must be an object")
    for f in fields(cls):
        name = f"{prefix}.{f.name}"
        required = f.default is MISSING and f.default_factory is MISSING
        if f.name not in data:
            if required:
                fail(name, "missing")
            continue
        value = data[f.name]
        if value is None and not required:
            continue
        meta = f.metadata
        if not meta["test"](value):
            fail(name, f"must be {meta['what']}, got {value!r:.60}")
        nested = meta["record"]
        if nested is not None:
            items = enumerate(value) if meta["many"] == "list" else value.items() if meta["many"] == "dict" \
                else [(None, value)]
            for key, item in items:
                label = name if key is None else f"{prefix}.{f.name}[{key}]" if meta["many"] == "list" \
                    else f"{f.name}.{key}"
                parse(nested, item, where, label)
    if cls is Figure and ("q1" in data) != ("q3" in data):
        fail(prefix, "has one quartile without the other (q1 and q3 go together)")
    return data


# --- a claim's verdict from its records -----------------------------------------------------------
def claim_verdict(parts: Iterable[dict], not_measured: Iterable = ()) -> str:
    """A claim's verdict from its settled parts' records and its not-measured parts (harness.catalogue.combine)."""
    return combine([(p["verdict"], bool(p["measured_support"])) for p in parts]
                   + [(NOT_MEASURED, False) for _ in not_measured])


def fmt_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def unit_suffix(unit: str) -> str:
    return f" {unit}" if unit else ""
