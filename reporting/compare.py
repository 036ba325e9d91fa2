"""Figures across environments: the ratio of medians and whether the samples say it is real.

For each claim, each deciding figure (one that a check reads) of each part is compared
between a reference column and every other column that measured the same part: the ratio
of medians, and a two-sided Mann-Whitney U test on the saved per-round samples. With fewer
than MIN_SIDE samples on a side no p-value is given: "n too small".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from reporting.model import Cell, ClaimView
from reporting.numbers import fmt

MIN_SIDE = 5
ALPHA = 0.05


@dataclass
class Row:
    claim: str
    part: str
    figure: str
    unit: str
    a: str  # column keys
    b: str
    a_value: float
    b_value: float
    ratio: float | None
    p: float | None
    verdict: str  # "n too small", "samples not saved", "differs (p=…)", "no clear difference (p=…)"

    def cells(self, labels: dict[str, str]) -> list[str]:
        ratio = "—" if self.ratio is None else fmt(self.ratio, "x")
        return [self.claim, self.part, self.figure, fmt(self.a_value, self.unit), fmt(self.b_value, self.unit),
                ratio, self.verdict]


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def significance(a: dict, b: dict) -> tuple[float | None, str]:
    na, nb = a.get("n", 1), b.get("n", 1)
    if min(na, nb) < MIN_SIDE:
        return None, f"n too small ({na} and {nb}; needs {MIN_SIDE} a side)"
    sa, sb = a.get("samples"), b.get("samples")
    if not sa or not sb:
        return None, "samples not saved"
    if len(set(sa) | set(sb)) == 1:
        return 1.0, "no clear difference (identical samples)"
    from scipy.stats import mannwhitneyu  # imported here: only comparisons need scipy

    p = float(mannwhitneyu(sa, sb, alternative="two-sided").pvalue)
    shown = "< 0.001" if p < 0.001 else f"= {p:.3f}"
    return p, (f"differs (Mann-Whitney p {shown})" if p < ALPHA else f"no clear difference (p {shown})")


def deciding_names(cells: list[Cell]) -> list[str]:
    names = []
    for c in cells:
        for _, check in c.checks():
            if check["name"] not in names:
                names.append(check["name"])
    return names


def pair(claim: str, a: Cell, b: Cell, names: list[str]) -> list[Row]:
    rows = []
    parts_b = {p.name: p for p in b.parts}
    for pa in a.parts:
        pb = parts_b.get(pa.name)
        if pb is None:
            continue
        for name in names:
            fa, fb = pa.info["figures"].get(name), pb.info["figures"].get(name)
            if fa is None or fb is None or not (_numeric(fa.get("value")) and _numeric(fb.get("value"))):
                continue
            ratio = fb["value"] / fa["value"] if fa["value"] else None
            p, verdict = significance(fa, fb)
            rows.append(Row(claim, pa.name, name, fa.get("unit", ""), a.column.key, b.column.key,
                            fa["value"], fb["value"], ratio, p, verdict))
    return rows


def across(view: ClaimView) -> list[Row]:
    """Every other column against the first column that measured the claim."""
    measured = [c for c in view.cells if c.parts]
    if len(measured) < 2:
        return []
    names = deciding_names(measured)
    ref = measured[0]
    return [row for other in measured[1:] for row in pair(view.id, ref, other, names)]


HEADERS = ["claim", "part", "figure", "A", "B", "B / A", "significance"]
