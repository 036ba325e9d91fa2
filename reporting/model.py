"""What each claim reads in each column: its verdict, the parts behind it, the deciding checks.

The verdict of a claim in a column comes from harness.catalogue.combine over the newest run
that selected it; a claim that no run of the column measured reads not measured here, with
the reasons, and never vanishes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness import catalogue, record
from harness import environment as envkey
from reporting.numbers import fmt, fmt_range, sort_key
from reporting.runs import Column, Run

_UNIT_METHOD = re.compile(r"^(.+?) \((.+)\)$")
NOT_RUN = "no run of this environment selected the claim"
OP_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least", "==": "exactly", "!=": "not"}


@dataclass
class Part:
    bench: dict

    @property
    def info(self) -> dict:
        return self.bench["extra_info"]

    @property
    def name(self) -> str:
        return self.bench["name"]

    @property
    def params(self) -> dict:
        return self.bench.get("params") or {}

    @property
    def label(self) -> str:
        return self.label_in(several_tests=True)

    def label_in(self, several_tests: bool) -> str:
        """Its params in words ("work hashlib, workers 2"), and its test's name too (in words) where
        the claim has several tests."""
        test = self.name.split("[")[0].removeprefix("test_").replace("_", " ")
        params = ", ".join(f"{str(k).replace('_', ' ')} {v}" for k, v in self.params.items())
        if not several_tests:
            return params or test
        return f"{test} ({params})" if params else test


@dataclass
class Cell:
    claim: catalogue.Claim
    column: Column
    run: Run | None
    verdict: str
    expected: str
    parts: list[Part] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)  # not-measured parts: {part, reason, ...}

    @property
    def decided(self) -> bool:
        return self.verdict in catalogue.DECIDED

    @property
    def surprising(self) -> bool:
        """A decided verdict that differs from what the catalogue expects in this environment."""
        return self.decided and self.verdict != self.expected

    @property
    def reasons(self) -> list[str]:
        if self.run is None and self.verdict == catalogue.NOT_MEASURED:
            return [NOT_RUN]
        if self.run is not None and not self.parts and not self.missing:
            return [f"{self.run.path.name} selected the claim but recorded no evidence for it"]
        return list(dict.fromkeys(m["reason"] for m in self.missing))

    def part_label(self, part: Part) -> str:
        return part.label_in(len({p.name.split("[")[0] for p in self.parts}) > 1)

    def checks(self) -> list[tuple[Part, dict]]:
        return [(p, c) for p in self.parts for c in p.info["checks"]]


@dataclass
class ClaimView:
    claim: catalogue.Claim
    cells: list[Cell]

    @property
    def id(self) -> str:
        return self.claim.id

    @property
    def flips(self) -> bool:
        """Two environments reached different decided verdicts."""
        return len({c.verdict for c in self.cells if c.decided}) > 1


def cell(claim: catalogue.Claim, column: Column) -> Cell:
    expected = claim.expected_for(envkey.traits(column.env))
    if claim.expected == "not-testable":
        return Cell(claim, column, None, "not-testable", expected)
    run = column.newest_for(claim.id)
    if run is None:
        return Cell(claim, column, None, catalogue.NOT_MEASURED, expected)
    parts = [Part(b) for b in run.benchmarks if (b.get("extra_info") or {}).get("claim") == claim.id]
    parts.sort(key=lambda p: (p.name.split("[")[0], [sort_key(v) for v in p.params.values()]))
    missing = [m for m in run.not_measured if m["claim"] == claim.id]
    verdict = record.claim_verdict([p.info for p in parts], missing)
    return Cell(claim, column, run, verdict, expected, parts, missing)


def reading_verdicts(cell_: Cell) -> list[tuple[str, str]]:
    """(reading, its verdict here) for a claim whose sentence the notes let be read two ways:
    each reading combines the parts of its own test functions, as the claim combines all."""
    out = []
    for reading, tests in cell_.claim.readings.items():
        if cell_.run is None:
            out.append((reading, cell_.verdict))
            continue
        parts = [p.info for p in cell_.parts if p.name.split("[")[0] in tests]
        missing = [m for m in cell_.missing if m["part"].split("[")[0] in tests]
        out.append((reading, record.claim_verdict(parts, missing)))
    return out


def views(claims: dict[str, catalogue.Claim], cols: list[Column]) -> list[ClaimView]:
    return [ClaimView(c, [cell(c, col) for col in cols]) for c in claims.values()]


def _rank(check: dict) -> int:
    if check["role"] == "support" and check["passed"] is False:
        return 0
    if check["passed"] is None:
        return 1
    if check["role"] == "caveat" and check["passed"]:
        return 2
    return 3 if check["role"] == "support" else 4


def deciding(cell_: Cell, limit: int | None = 3) -> list[tuple[Part, dict]]:
    """The checks that decided the verdict, one per name: failed supports, undecided, caveats shown, supports."""
    seen, shown = set(), []
    for part, check in sorted(cell_.checks(), key=lambda pc: _rank(pc[1])):
        key = (check["name"], check["role"])
        if key not in seen:
            seen.add(key)
            shown.append((part, check))
    return shown if limit is None else shown[:limit]


def outcome(check: dict) -> str:
    return {True: "passed", False: "failed", None: "undecided"}[check["passed"]]


def interval_text(check_or_figure: dict) -> str:
    interval = check_or_figure.get("interval")
    if not interval:
        return ""
    n, looks, level = (check_or_figure.get(k) for k in ("n", "looks", "level"))
    how = f", n={n}" if n else ""
    if looks and looks > 1:
        how += f" after {looks} looks, level {level:.1%}" if level else f" after {looks} looks"
    return f"95% interval {fmt_range(interval[0], interval[1], check_or_figure.get('unit', ''))}{how}"


def in_words(check: dict) -> str:
    """'thread_cores was 1.01 cores (95% interval 0.99–1.02 cores, n=7); needs at most 1.3 cores: passed'."""
    unit = check.get("unit", "")
    spread = interval_text(check)
    text = f"{check['name']} was {fmt(check['value'], unit)}" + (f" ({spread})" if spread else "")
    text = f"{text}; needs {OP_WORDS[check['op']]} {fmt(check['threshold'], unit)}: {outcome(check)}"
    other = check.get("opposite")
    if other:
        spread = interval_text({**other, "unit": unit})
        text += (f"; where the outcome should differ ({other['label']}): {fmt(other['value'], unit)}"
                 + (f" ({spread})" if spread else "") + f", {outcome(other)}")
    return text


def figure_text(fig: dict) -> str:
    """A figure with its spread and how it was measured: '4 µs (median of 7; 95% interval 3.8–4.3 µs)'."""
    # a unit's method ('us (batched waits)', 'ns per descriptor (batched waits)') is said once, last
    unit, method = _UNIT_METHOD.match(fig["unit"]).groups() if _UNIT_METHOD.match(fig.get("unit") or "") \
        else (fig.get("unit", ""), "")
    text = fmt(fig.get("value"), unit)
    how = []
    if fig.get("method"):
        how.append(fig["method"])
    elif fig.get("n", 1) > 1:
        how.append(f"median of {fig['n']:,}")
    if fig.get("interval"):
        how.append(f"95% interval {fmt_range(fig['interval'][0], fig['interval'][1], unit)}")
    elif "q1" in fig and fig.get("q1") != fig.get("q3"):
        how.append(f"quartiles {fmt_range(fig['q1'], fig['q3'], unit)}")
    if method:
        how.append(method)
    return f"{text} ({'; '.join(how)})" if how else text


def varying_conditions(cell_: Cell) -> dict[str, list]:
    """Conditions and params that differ between the parts, each with its values sorted as numbers."""
    values: dict[str, set] = {}
    for p in cell_.parts:
        for k, v in {**p.info["conditions"], **p.params}.items():
            values.setdefault(k, set()).add(v if isinstance(v, (int, float, str, bool)) else str(v))
    return {k: sorted(vs, key=sort_key) for k, vs in values.items() if len(vs) > 1}


def shared_conditions(cell_: Cell) -> dict:
    if not cell_.parts:
        return {}
    first = cell_.parts[0].info["conditions"]
    return {k: v for k, v in first.items() if all(p.info["conditions"].get(k) == v for p in cell_.parts)}


def notes(cell_: Cell) -> list[str]:
    return list(dict.fromkeys(n for p in cell_.parts for n in p.info["notes"]))


# --- could each verdict have failed? ------------------------------------------------------------
NOT_FALSIFIABLE = "cannot be falsified here (reason below)"


def discrimination(check: dict, claim=None) -> str:
    """Whether a check could have read the other way here: its opposite world landed on the other side."""
    other = check.get("opposite")
    if not other:
        if claim is not None and check["name"] in claim.unfalsified:
            return NOT_FALSIFIABLE
        return "no opposite world measured"
    if other["passed"] is None or check["passed"] is None:
        return "undecided"
    return "yes" if other["passed"] != check["passed"] else "no: both worlds on one side"


def failable_checks(cell_: Cell, claim=None) -> list[tuple[str, dict, str]]:
    """(part label, check, discrimination) for the cell's deciding checks (the catalogue's
    `deciding`, support checks: a caveat check of the same name qualifies, it does not decide)
    and any other check measured beside an opposite world, not-measured parts included."""
    deciding = set(claim.deciding) if claim is not None else set()
    rows = [(cell_.part_label(p), ch, discrimination(ch, claim)) for p, ch in cell_.checks()
            if claim is None or (ch["name"] in deciding and ch["role"] == "support") or ch.get("opposite")]
    for m in cell_.missing:
        for ch in (m.get("evidence") or {}).get("checks") or []:
            if ch.get("opposite") and ch["opposite"]["passed"] is not None:
                rows.append((f"{m['part']} (not measured)", ch, "no: both worlds on one side"))
    return rows


def failability(view: ClaimView) -> str:
    """For the index: of a claim's deciding checks, over every environment, how many discriminated,
    and which the verdict rests on because no opposite world can be built for them here."""
    claim = view.claim
    checks = [(ch, d) for c in view.cells for _, ch, d in failable_checks(c, claim)
              if ch["name"] in claim.deciding and ch["role"] == "support"]
    if not checks:
        return "no deciding check measured"
    falsifiable = [(ch, d) for ch, d in checks if d != NOT_FALSIFIABLE]
    unfalsifiable = sorted({ch["name"] for ch, d in checks if d == NOT_FALSIFIABLE})
    shown = sum(d == "yes" for _, d in falsifiable)
    parts = []
    if falsifiable:
        parts.append("every deciding check" if shown == len(falsifiable)
                     else f"{shown} of {len(falsifiable)} deciding checks")
    if unfalsifiable:
        parts.append(f"rests on {', '.join(unfalsifiable)}: no opposite world can be built here")
    return "; ".join(parts)
