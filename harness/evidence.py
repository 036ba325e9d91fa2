"""Evidence: the figures an experiment measured, the checks they pass or fail, the verdict.

A claim's statement makes predictions. An experiment states each prediction as a check on
a measured figure:

- a *support* check is something the claim predicts; one failed support check refutes it;
- a *caveat* check measures a qualification (GIL-releasing code does scale, a crashed
  worker breaks its pool): when every caveat check of a test passes, the claim holds only
  with that caveat. A caveat shown only in part is not shown: the test reads holds, and
  fails if it expected the caveat.

The verdict follows from the checks alone (``decide``), never from a typed-in value. The
test then asserts that the verdict is the one it expected, so a disagreement with reality
fails the test with the figure and the threshold in the message. ``settle`` writes all of
it into the benchmark's ``extra_info``, which is all report.py reads.
"""
from __future__ import annotations

import operator
import os
import platform
import statistics
import sys
import types
from dataclasses import asdict, dataclass, field

from harness import scale as _scale
from harness.catalogue import VERDICTS, Claim

OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
ROLES = ("support", "caveat")
SCALAR = (int, float, str, bool)


@dataclass
class Check:
    name: str
    value: float | int | str | bool
    op: str
    threshold: float | int | str | bool
    unit: str
    role: str
    why: str
    passed: bool

    def describe(self) -> str:
        state = "passed" if self.passed else "failed"
        return (
            f"{self.role} check {self.name!r} = {_fmt(self.value)}{_unit(self.unit)}, "
            f"needs {self.op} {_fmt(self.threshold)}{_unit(self.unit)} ({state})"
        )


def decide(checks: list[Check]) -> str:
    """The verdict that a list of checks supports.

    A part of a claim may carry caveat checks only (the GIL-releasing half of TH4): its
    support is then vacuous and it reads holds, or holds-with-caveat once its caveat shows.
    """
    if not checks:
        raise ValueError("a verdict needs at least one check")
    if not all(c.passed for c in checks if c.role == "support"):
        return "refuted"
    caveats = [c for c in checks if c.role == "caveat"]
    if caveats and all(c.passed for c in caveats):
        return "holds-with-caveat"
    return "holds"


def combine(verdicts: list[str]) -> str:
    """A claim's verdict from the verdicts of its parts (its tests): the strongest qualifier wins."""
    for verdict in ("refuted", "holds-with-caveat", "holds", "not-testable"):
        if verdict in verdicts:
            return verdict
    raise ValueError("no verdicts to combine")


def cpus_available() -> int:
    """CPUs this process may run on (affinity, e.g. taskset), not CPUs in the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def base_conditions() -> dict:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "gil_enabled": gil_enabled(),
        "cpus_available": cpus_available(),
        "cpus_online": os.cpu_count(),
        "platform": platform.platform(),
        "scale": _scale.current(),
    }


def summarize(samples) -> dict:
    """Median with quartiles: the spread the report shows beside a figure."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples")
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {
        "value": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "min": values[0],
        "max": values[-1],
        "n": len(values),
    }


class Evidence:
    def __init__(self, claim: Claim, part: str, settings: dict | None = None):
        self.claim = claim
        self.part = part
        self.figures: dict[str, dict] = {}
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.conditions: dict = base_conditions()
        self.settings: dict = dict(settings or {})
        self.not_testable_reason = ""
        self.settled = False

    # --- recording -------------------------------------------------------------------
    def condition(self, **values) -> None:
        """Record a condition of the measurement (event loop, start method, N, ...)."""
        for key, value in values.items():
            self.conditions[key] = _jsonable(value)

    def figure(self, name: str, value=None, unit: str = "", *, samples=None) -> float:
        """Record a figure; with `samples`, its median, quartiles and count. Returns the value."""
        if samples is not None:
            entry = summarize(samples)
            if value is not None:
                entry["value"] = value
        else:
            if value is None:
                raise ValueError(f"figure {name!r} needs a value or samples")
            entry = {"value": _jsonable(value)}
        entry["unit"] = unit
        self.figures[name] = entry
        return entry["value"]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def support(self, name, value, op, threshold, unit="", why="") -> bool:
        """A prediction of the claim, checked against a measured figure."""
        return self._check("support", name, value, op, threshold, unit, why)

    def caveat(self, name, value, op, threshold, unit="", why="") -> bool:
        """A measured qualification: when it passes, the claim holds only with a caveat."""
        return self._check("caveat", name, value, op, threshold, unit, why)

    def not_testable(self, reason: str) -> None:
        self.not_testable_reason = reason

    def _check(self, role, name, value, op, threshold, unit, why) -> bool:
        if op not in OPS:
            raise ValueError(f"unknown comparison {op!r}; use one of {' '.join(OPS)}")
        if name not in self.figures:
            self.figure(name, value, unit)
        passed = bool(OPS[op](value, threshold))
        self.checks.append(Check(name, _jsonable(value), op, _jsonable(threshold), unit, role, why, passed))
        return passed

    # --- deciding --------------------------------------------------------------------
    @property
    def verdict(self) -> str:
        if self.not_testable_reason:
            return "not-testable"
        return decide(self.checks)

    def record(self) -> dict:
        """The evidence as it goes into the benchmark's extra_info."""
        return {
            "claim": self.claim.id,
            "part": self.part,
            "verdict": self.verdict,
            "expected": self.expected,
            "checks": [asdict(c) for c in self.checks],
            "figures": self.figures,
            "notes": self.notes,
            "conditions": self.conditions,
            "settings": self.settings,
            "not_testable_reason": self.not_testable_reason,
        }

    expected: str = ""

    def settle(self, benchmark, expect: str | None = None) -> str:
        """Decide, store the evidence in the benchmark JSON, and assert the expected verdict.

        `expect` defaults to the catalogue's verdict for the claim; a test that settles only
        one part of a claim (the part without the caveat, say) names its own expectation.
        """
        self.expected = expect or self.claim.expected
        if self.expected not in VERDICTS:
            raise ValueError(f"unknown verdict {self.expected!r}")
        if getattr(benchmark, "stats", None) is None:
            raise RuntimeError(
                f"{self.claim.id}: settle() needs a benchmark that has run; time the workload "
                "with benchmark(...) or benchmark.pedantic(...) first"
            )
        verdict = self.verdict
        benchmark.extra_info.update(self.record())
        self.settled = True
        if verdict != self.expected:
            lines = [f"{self.claim.id} ({self.part}): measured verdict {verdict!r}, expected {self.expected!r}"]
            lines += [f"  {c.describe()}" + (f" -- {c.why}" if c.why else "") for c in self.checks]
            raise AssertionError("\n".join(lines))
        return verdict


def module_settings(module: types.ModuleType) -> dict:
    """The module's UPPER_CASE constants that are plain data: the experiment's settings."""
    settings = {}
    for name, value in vars(module).items():
        if not name.isupper() or name.startswith("_"):
            continue
        value = _plain(value)
        if value is not None:
            settings[name] = value
    return settings


def _plain(value):
    if isinstance(value, SCALAR):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, SCALAR) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, SCALAR) for k, v in value.items()):
        return dict(value)
    return None


def _jsonable(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""
