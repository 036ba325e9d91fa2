"""Evidence: the figures an experiment measured, the checks they pass or fail, the verdict.

A claim's statement makes predictions. An experiment states each prediction as a check on
a measured figure:

- a *support* check is something the claim predicts; one failed support check refutes it;
- a *caveat* check measures a qualification (GIL-releasing code does scale, a crashed
  worker breaks its pool): when every caveat check of a test passes, the claim holds only
  with that caveat. A caveat shown only in part is not shown: the test reads holds, and
  fails if it expected the caveat.

A check on a figure measured over rounds is decided by the median's distribution-free
confidence interval (harness.stats): it passes when the whole interval lies on the claim's
side of the threshold, fails when the whole interval lies on the other side, and is
*undecided* otherwise. A part whose verdict would change with an undecided check's outcome
is undecided: it neither fails its test nor decides the claim.

The verdict follows from the checks alone (``decide``), never from a typed-in value. The
test then asserts that the verdict is the one it expected, so a disagreement with reality
fails the test with the figure and the threshold in the message. ``settle`` writes all of
it into the benchmark's ``extra_info``, which is all report.py reads. A part that cannot be
measured here calls ``not_measured(reason)``: it is skipped, and recorded as such.
"""
from __future__ import annotations

import itertools
import operator
import platform
import types
from dataclasses import dataclass

import pytest

from harness import environment, record, stats
from harness import scale as _scale
from harness.catalogue import DECIDED, UNDECIDED, Claim
from harness.record import ROLES, Check, Figure, OppositeOutcome, Part
from harness.record import fmt_value as _fmt
from harness.record import unit_suffix as _unit

OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
SCALAR = (int, float, str, bool)
MAX_SAVED_SAMPLES = 2000  # raw samples kept per figure, for cross-environment tests in the report
MAX_OPEN_CHECKS = 12  # undecided checks in one part beyond which the part is simply undecided


@dataclass(frozen=True)
class Opposite:
    """The same figure measured in the world with the other outcome, for a check to be judged against.

    For a check that passes, the world where the claim is false (a busy-polling reader,
    processes, one malloc arena); for a check that refutes, the world where it would hold.
    Given as `samples` (rounds interleaved with the claim's world) or as one `value` (a count).
    """
    label: str
    samples: list | None = None
    value: float | int | None = None

    def __post_init__(self):
        if (self.samples is None) == (self.value is None):
            raise ValueError(f"opposite world {self.label!r}: give samples or a value, not both or neither")


def _verdict_of(roles: list[str], outcomes: list[bool]) -> str:
    if not all(ok for role, ok in zip(roles, outcomes) if role == "support"):
        return "refuted"
    caveats = [ok for role, ok in zip(roles, outcomes) if role == "caveat"]
    if caveats and all(caveats):
        return "holds-with-caveat"
    return "holds"


def decide(checks: list[Check]) -> str:
    """The verdict that a list of checks supports, or undecided if an undecided check could change it.

    A part of a claim may carry caveat checks only (the GIL-releasing half of TH4): it reads
    holds, or holds-with-caveat once its caveat shows, but never decides the claim alone
    (see harness.catalogue.combine).
    """
    if not checks:
        raise ValueError("a verdict needs at least one check")
    roles = [c.role for c in checks]
    open_ = [i for i, c in enumerate(checks) if c.passed is None]
    if len(open_) > MAX_OPEN_CHECKS:
        return UNDECIDED
    found = set()
    for guess in itertools.product((True, False), repeat=len(open_)):
        outcomes = [c.passed for c in checks]
        for i, ok in zip(open_, guess):
            outcomes[i] = ok
        found.add(_verdict_of(roles, outcomes))
        if len(found) > 1:
            return UNDECIDED
    return found.pop()


def measured_support(checks: list[Check]) -> bool:
    """True when at least one support check was decided (passed or failed)."""
    return any(c.role == "support" and c.passed is not None for c in checks)


def base_conditions() -> dict:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "gil_enabled": environment.gil_enabled(),
        "cpus_available": environment.cpus_available(),
        "cpus_online": environment.key()["cores"],
        "platform": platform.platform(),
        "scale": _scale.current(),
    }


def summarize(samples) -> dict:
    return stats.summarize(samples)


class Evidence:
    def __init__(self, claim: Claim, part: str, settings: dict | None = None):
        self.claim = claim
        self.part = part
        self.figures: dict[str, Figure] = {}
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.conditions: dict = base_conditions()
        self.settings: dict = dict(settings or {})
        self.not_measured_reason = ""
        self.settled = False
        self.expected = ""

    # --- recording -------------------------------------------------------------------
    def condition(self, **values) -> None:
        """Record a condition of the measurement (loop, start_method, n, ...)."""
        for key, value in values.items():
            self.conditions[key] = _jsonable(value)

    def figure(self, name: str, value=None, unit: str = "", *, samples=None) -> float:
        """Record a figure; with `samples`, its median, quartiles, count and the samples. Returns the value.

        Times go in seconds (unit "s"); a scaled time unit is refused (harness.record.check_unit).
        """
        record.check_unit(unit)
        if samples is not None:
            samples = [_jsonable(v) for v in samples]
            entry = Figure(unit=unit, **stats.summarize(samples))
            if len(samples) >= stats.MIN_SAMPLES:
                entry.interval = list(stats.median_interval(samples))
            entry.samples = [round(float(v), 9) for v in samples[:MAX_SAVED_SAMPLES]]
            if value is not None:
                entry.value = _jsonable(value)
        else:
            if value is None:
                raise ValueError(f"figure {name!r} needs a value or samples")
            entry = Figure(value=_jsonable(value), unit=unit)
        self.figures[name] = entry
        return entry.value

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def check(self, role: str, name: str, *, op: str, threshold, unit: str = "", why: str = "", samples=None,
              value=None, opposite: Opposite | None = None) -> bool | None:
        """A check of `role` ("support": the claim predicts it; "caveat": a measured qualification).

        Give the figure as `samples` (decided by the median's interval) or as one `value`.
        `opposite`, the same figure in the world with the other outcome, is judged by the same
        op and threshold and recorded inside the check. With it, the check decides only when
        the two worlds land on opposite sides of the threshold; while the opposite world is
        undecided the check is undecided, and when both land on the same side the part is not
        discriminating here: not measured, with both figures named, never a pass.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        return self._check(role, name, value, op, threshold, unit, why, samples, opposite)

    def support(self, name: str, *, op: str, threshold, unit: str = "", why: str = "", samples=None, value=None,
                opposite: Opposite | None = None) -> bool | None:
        """A prediction of the claim, checked against a measured figure (or its interval, given samples)."""
        return self.check("support", name, op=op, threshold=threshold, unit=unit, why=why, samples=samples,
                          value=value, opposite=opposite)

    def caveat(self, name: str, *, op: str, threshold, unit: str = "", why: str = "", samples=None, value=None,
               opposite: Opposite | None = None) -> bool | None:
        """A measured qualification: when it passes, the claim holds only with a caveat."""
        return self.check("caveat", name, op=op, threshold=threshold, unit=unit, why=why, samples=samples,
                          value=value, opposite=opposite)

    def control(self, name: str, *, op: str, threshold, unit: str = "", why: str = "", samples=None, value=None):
        """A same-run control that must show the opposite outcome was reachable here.

        Records the figure (samples, judged by their interval, or one value); unless it clears
        `op threshold`, the part is not measured here (skipped and recorded with the control's
        figures and `why`). Returns the figure's value (the median, given samples).
        """
        if (samples is None) == (value is None):
            raise ValueError(f"control {name!r}: give samples or a value")
        if samples is not None:
            samples = list(samples)
            figure = self.figure(name, unit=unit, samples=samples)
            shown, (lo, hi) = stats.decide(samples, op, threshold)
            spread = f" (95% interval {_fmt(lo)}-{_fmt(hi)}, n={len(samples)})"
        else:
            figure = self.figure(name, value, unit)
            shown, spread = bool(OPS[op](value, threshold)), ""
        if shown is not True:
            self.not_measured(f"control {name} = {_fmt(figure)}{_unit(unit)}{spread} is not clearly {op} "
                              f"{_fmt(threshold)}{_unit(unit)}: {why}")
        return figure

    def not_measured(self, reason: str) -> None:
        """This part cannot be measured here: record why (with the figures so far) and skip the test."""
        self.not_measured_reason = reason
        pytest.skip(reason)

    def _judge(self, name, value, op, threshold, samples) -> tuple[bool | None, list[float] | None, int | None]:
        """The outcome of `op threshold` on samples (by their interval) or on a value; the interval and n."""
        if samples is not None:
            if op in ("==", "!="):
                raise ValueError(f"{name}: an interval decides < <= > >=, not {op}")
            if len(samples) < stats.MIN_SAMPLES:
                raise ValueError(f"{name}: a decided figure needs {stats.MIN_SAMPLES} samples or more, "
                                 f"got {len(samples)}")
            passed, (lo, hi) = stats.decide(samples, op, threshold)
            return passed, [lo, hi], len(samples)
        if value is None:
            raise ValueError(f"check {name!r} needs a value or samples")
        return bool(OPS[op](value, threshold)), None, None

    def _check(self, role, name, value, op, threshold, unit, why, samples, opposite=None) -> bool | None:
        if op not in OPS:
            raise ValueError(f"unknown comparison {op!r}; use one of {' '.join(OPS)}")
        samples = None if samples is None else list(samples)
        passed, interval, n = self._judge(name, value, op, threshold, samples)
        if samples is not None:
            value = self.figure(name, value, unit, samples=samples)
        elif name not in self.figures:
            self.figure(name, value, unit)
        other = None
        if opposite is not None:
            o_samples = None if opposite.samples is None else list(opposite.samples)
            o_passed, o_interval, o_n = self._judge(f"{name} ({opposite.label})", opposite.value, op, threshold,
                                                    o_samples)
            o_value = stats.median(o_samples) if o_samples is not None else opposite.value
            other = OppositeOutcome(opposite.label, _jsonable(o_value), o_passed, o_interval, o_n)
            if o_samples is not None:  # the opposite world's figure, beside the claim world's of the same name
                self.figure(f"{name}_opposite", unit=unit, samples=o_samples)
            else:
                self.figure(f"{name}_opposite", opposite.value, unit)
        measured = passed
        if other is not None and other.passed is None:
            passed = None  # the check decides only once the opposite world has landed too
        looks, level = (stats.rank_for(n)[1:] if n else (None, None))
        self.checks.append(Check(name, _jsonable(value), op, _jsonable(threshold), unit, role, why, passed,
                                 interval, n, looks, level, other))
        if other is not None and measured is not None and other.passed == measured:
            self.not_measured(
                f"not discriminating here: {name} = {_fmt(value)}{_unit(unit)} here and {_fmt(other.value)}"
                f"{_unit(unit)} in the opposite world ({other.label}) both {'pass' if measured else 'fail'} "
                f"{op} {_fmt(threshold)}{_unit(unit)}, so this check could not have read the other way")
        return passed

    # --- deciding --------------------------------------------------------------------
    @property
    def verdict(self) -> str:
        return decide(self.checks)

    def record(self) -> dict:
        """The evidence as it goes into the benchmark's extra_info (harness.record.Part)."""
        return record.to_json(Part(
            claim=self.claim.id, part=self.part, verdict=self.verdict if self.checks else "not-measured",
            expected=self.expected, measured_support=measured_support(self.checks), checks=self.checks,
            figures=self.figures, notes=self.notes, conditions=self.conditions, settings=self.settings,
            not_measured_reason=self.not_measured_reason))

    def settle(self, benchmark) -> str:
        """Decide, store the evidence in the benchmark JSON, and assert the expected verdict.

        The expectation comes from the catalogue alone (Claim.expected_for_part: the claim's
        verdict in this environment, a caveat-free part of a holds-with-caveat claim expecting
        holds, or the verdict the catalogue's `parts` gives this test function). An undecided
        part is recorded and passes: it decides nothing, so it contradicts nothing.
        """
        self.expected = self.claim.expected_for_part(
            self.part, environment.traits(), has_caveat_checks=any(c.role == "caveat" for c in self.checks))
        if getattr(benchmark, "stats", None) is None:
            raise RuntimeError(
                f"{self.claim.id}: settle() needs a benchmark that has run; time the workload "
                "with benchmark(...) or benchmark.pedantic(...) first"
            )
        verdict = self.verdict
        benchmark.extra_info.update(self.record())
        self.settled = True
        if verdict in DECIDED and verdict != self.expected:
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
