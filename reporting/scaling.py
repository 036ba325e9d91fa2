"""Scaling curves: speedup and cores kept busy against the number of units, per environment.

They come from full-scale runs only (`make scaling`: the experiments marked `scaling` at
--scale full), which measure k = 2, 4, ... up to the CPUs and one oversubscribed point
(harness.scale.parallel_counts). Those runs are columns of their own (reporting/runs.py:
scale is part of a column's key), so a scaling run never replaces a quick verdict: the
verdict matrix reads the quick columns, this page the full-scale ones.

Each series is figures one experiment recorded at each k, in the same rounds as the
sequential run it is compared with: TH4 gives threads (GIL off on a free-threaded build) and
processes, IN1 interpreters. The point k = 1 is that sequential run itself: its speedup is 1
by definition, its cores are measured (TH4's sequential_cores). The ideal, min(k, CPUs), is
drawn from the environment's own CPU count, not typed here.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness import catalogue  # noqa: E402
from harness import environment as envkey  # noqa: E402
from reporting import model  # noqa: E402
from reporting.numbers import fmt, fmt_range, tick  # noqa: E402
from reporting.runs import Column, heading  # noqa: E402


@dataclass(frozen=True)
class SeriesSource:
    unit: str  # as the table's rows name it
    claim: str
    test: str  # the experiment function whose parts are the points
    param: str  # its unit-count param
    speedup: str  # figure names
    cores: str


SOURCES = (
    SeriesSource("threads", "TH4", "test_cpu_bound_threads_do_not_scale", "workers", "thread_speedup", "thread_cores"),
    SeriesSource("processes", "TH4", "test_cpu_bound_threads_do_not_scale", "workers", "process_speedup",
                 "process_cores"),
    SeriesSource("interpreters", "IN1", "test_interpreters_run_cpu_bound_python_in_parallel", "k", "speedup",
                 "interpreter_cores"),
)
CLAIMS = tuple(dict.fromkeys(s.claim for s in SOURCES))
SEQUENTIAL = ("TH4", "sequential_cores")  # the k = 1 point's cores
PLOT_PREFIX = "scaling-"


@dataclass
class Point:
    k: int
    speedup: dict | None  # a figure record: value, interval, ...
    cores: dict | None
    verdict: str = ""  # the part's verdict at this k (the claim's checks there)


@dataclass
class Curve:
    unit: str
    points: list[Point] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why it has no point, where it has none


@dataclass
class Scaling:
    column: Column
    curves: list[Curve]
    sequential_cores: dict | None
    cpus: int
    label: str = ""

    @property
    def plot_file(self) -> str:
        return f"plots/{PLOT_PREFIX}{self.column.anchor}.png"


def unit_label(unit: str, column: Column) -> str:
    if unit == "threads" and "no_gil" in envkey.traits(column.env):
        return "threads (GIL off)"
    return unit


def curves(claims: dict[str, catalogue.Claim], column: Column) -> Scaling:
    cells = {cid: model.cell(claims[cid], column) for cid in CLAIMS if cid in claims}
    out, sequential = [], None
    for src in SOURCES:
        cell = cells.get(src.claim)
        curve = Curve(unit_label(src.unit, column))
        for part in cell.parts if cell else []:
            if part.name.split("[")[0] != src.test or src.param not in part.params:
                continue
            figs = part.info.get("figures", {})
            curve.points.append(Point(int(part.params[src.param]), figs.get(src.speedup), figs.get(src.cores),
                                      part.info.get("verdict", "")))
            if src.claim == SEQUENTIAL[0] and sequential is None and SEQUENTIAL[1] in figs:
                sequential = figs[SEQUENTIAL[1]]
        curve.points.sort(key=lambda p: p.k)
        if not curve.points:
            curve.reasons = cell.reasons if cell else [f"the catalogue has no {src.claim}"]
        out.append(curve)
    return Scaling(column, out, sequential, int(column.env.get("cpus_available") or column.env["cores"]))


def _shown(fig: dict | None) -> str:
    if not fig:
        return "n/m"
    value, unit = fig["value"], fig.get("unit", "")
    if fig.get("interval") and fmt(fig["interval"][0], unit) != fmt(fig["interval"][1], unit):
        return f"{fmt(value, unit)} ({fmt_range(*fig['interval'], unit)})"
    return fmt(value, unit)


def table(s: Scaling, md_table) -> str:
    """A row per k: each unit's speedup and cores (median and 95% interval), and the ideal."""
    ks = sorted({p.k for c in s.curves for p in c.points})
    headers = ["k", "ideal"] + [f"{c.unit}: {what}" for c in s.curves if c.points for what in ("speedup", "cores")]
    rows = [["1 (sequential)", "1", *(["1x", _shown(s.sequential_cores)] * sum(1 for c in s.curves if c.points))]]
    for k in ks:
        row = [str(k) + (" (oversubscribed)" if k > s.cpus else ""), tick(min(k, s.cpus))]
        for c in s.curves:
            if not c.points:
                continue
            p = next((p for p in c.points if p.k == k), None)
            row += [_shown(p.speedup) if p else "n/m", _shown(p.cores) if p else "n/m"]
        rows.append(row)
    return md_table(headers, rows)


def verdicts(s: Scaling) -> list[str]:
    """Each claim's part verdict at each k, in words; for a curve without points, why."""
    lines = [f"{c.unit}: not measured here: {'; '.join(c.reasons)}" for c in s.curves if not c.points]
    for cid in CLAIMS:
        src = next(x for x in SOURCES if x.claim == cid)
        by_k = {}
        for c, x in zip(s.curves, SOURCES):
            if x.claim == cid:
                by_k.update({p.k: p.verdict for p in c.points})
        if by_k:
            lines.append(f"{cid} ({src.test.removeprefix('test_').replace('_', ' ')}): "
                         + ", ".join(f"k = {k} {v}" for k, v in sorted(by_k.items())))
    return lines


def draw(s: Scaling) -> bytes | None:
    """Two panels, speedup and cores against k, one series per unit, whiskers from the 95% intervals, and the
    ideal min(k, CPUs); None where no curve has a point."""
    if not any(c.points for c in s.curves):
        return None
    ks = sorted({1, *(p.k for c in s.curves for p in c.points)})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    for ax, what in zip(axes, ("speedup", "cores")):
        ax.plot(ks, [min(k, s.cpus) for k in ks], color="grey", linestyle="--", linewidth=1,
                label=f"ideal: min(k, {s.cpus} CPUs)")
        for i, c in enumerate(s.curves):
            first = [(1, {"value": 1.0})] if what == "speedup" else ([(1, s.sequential_cores)] if s.sequential_cores
                                                                      else [])
            pts = [(k, f) for k, f in first + [(p.k, getattr(p, what)) for p in c.points] if f]
            if len(pts) < 2:
                continue
            at = [k * (1 + 0.03 * (i - 1)) for k, _ in pts]  # side by side where the series share a k
            vals = [f["value"] for _, f in pts]
            err = [[max(0.0, f["value"] - (f.get("interval") or [f["value"]] * 2)[0]) for _, f in pts],
                   [max(0.0, (f.get("interval") or [f["value"]] * 2)[1] - f["value"]) for _, f in pts]]
            ax.errorbar(at, vals, yerr=err, marker="os^"[i % 3], markersize=4, capsize=3, label=c.unit)
        ax.axvline(s.cpus, color="purple", linestyle=":", linewidth=1, label=f"{s.cpus} CPUs available")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("units (k)")
        ax.set_ylabel("speedup over the sequential run (x)" if what == "speedup" else "cores kept busy")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.set_title("Speedup" if what == "speedup" else "Cores kept busy", fontsize=10)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.suptitle(f"Pure-Python CPU work over k units: {s.label}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def all_scalings(claims: dict[str, catalogue.Claim], full_cols: list[Column]) -> list[Scaling]:
    out = []
    for col in full_cols:
        s = curves(claims, col)
        s.label = heading(col, full_cols)
        out.append(s)
    return out


def csv(scalings: list[Scaling]) -> pd.DataFrame:
    rows = []
    for s in scalings:
        for c in s.curves:
            for p in c.points:
                for what in ("speedup", "cores"):
                    f = getattr(p, what) or {}
                    iv = f.get("interval") or ["", ""]
                    rows.append({"environment": s.label, "environment_key": s.column.key, "cpus": s.cpus,
                                 "unit": c.unit, "k": p.k, "quantity": what, "value": f.get("value", ""),
                                 "interval_low": iv[0], "interval_high": iv[1], "ideal": min(p.k, s.cpus),
                                 "part_verdict": p.verdict})
    return pd.DataFrame(rows, columns=["environment", "environment_key", "cpus", "unit", "k", "quantity", "value",
                                       "interval_low", "interval_high", "ideal", "part_verdict"])
