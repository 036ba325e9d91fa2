"""Plots of the claims' own figures, declared per claim, drawn once per report.

A declaration names figures (exact names or fnmatch patterns), the param on the x axis and
the param that splits series (hue). Each environment gets its own line or bar; whiskers come
from a figure's interval, else its quartiles. Threshold lines come from the run's own checks
of the same figure name, never from here. A declared figure that no run recorded leaves its
plot out with a note: experiments are renamed, and the report must not crash on it.
"""
from __future__ import annotations

import fnmatch
import io
import math
import re
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from reporting.model import ClaimView, Part  # noqa: E402
from reporting.numbers import (  # noqa: E402
    BYTE_UNITS,
    OP_SIGNS,
    TIME_UNITS,
    fmt,
    plain,
    scaled,
    sort_key,
    split_unit,
    tick,
)
from reporting.runs import heading  # noqa: E402

MIB, KIB = 1 << 20, 1 << 10


@dataclass(frozen=True)
class Plot:
    title: str
    y: tuple[str, ...]  # figure names or fnmatch patterns; several make a series each
    x: str | None = None  # a param; numeric values draw lines, others bars; None: one bar per part
    hue: str | None = None  # a param whose values get a series each
    log: bool = False
    refs: tuple[tuple[float, str], ...] = ()  # reference lines in the figures' own unit (the notes' claims)
    vline: tuple[str, float, str] | None = None  # (settings key, default, label): a marked x value


B = "B"
PLOTS: dict[str, tuple[Plot, ...]] = {
    "TH4": (Plot("Speedup over one worker", ("thread_speedup", "process_speedup"), x="workers"),
            Plot("Cores kept busy", ("thread_cores", "process_cores"), x="workers"),
            Plot("Cores kept busy by GIL-releasing work", ("thread_cores",), x="work")),
    "PR4": (Plot("Speedup of processes", ("speedup",), x="workers", hue="start_method"),
            Plot("Cores busy in workers", ("worker_cores", "room_cores"), x="workers", hue="start_method")),
    "PR3": (Plot("Creation cost per unit", ("*_create",), log=True),
            Plot("Switch cost, channel included", ("*_switch_incl_channel",), log=True)),
    "TH3": (Plot("Creation cost per unit", ("*_create",), log=True),
            Plot("Switch cost, channel included", ("*_switch_incl_channel",), log=True)),
    "CO4": (Plot("Switch cost, channel included", ("*_switch_incl_channel",), hue="loop", log=True),),
    "CO5": (Plot("Resident memory per unit", ("resident_per_thread", "resident_per_task"), log=True,
                 refs=((8 * MIB, "8 MB thread stack (the notes)"), (12 * KIB, "12 KB per coroutine (the notes)"))),
            Plot("Virtual memory per unit", ("vms_per_thread", "vms_per_task"), log=True,
                 refs=((8 * MIB, "8 MB thread stack (the notes)"), (12 * KIB, "12 KB per coroutine (the notes)"))),
            # The sweep is figures of one part (full scale only), so no param carries the thread count and a
            # vline could not sit at the cap: the figure names say where each count stands (x1 = at the cap).
            Plot("Heap address space per thread; at full scale also at x0.25-x4 glibc's arena cap",
                 ("heap_vms_per_thread", "heap_vms_per_thread_at_cap_x*"),
                 refs=((64 * MIB, "64 MiB arena per thread (the notes' heap)"),))),
    "EX1": (Plot("Latencies against N", ("sequential_latencies", "threads_latencies", "gather_latencies"),
                 x="n", hue="latency_ms", log=True),),
    "CM1": (Plot("Round trip by channel", ("round_trip_latency",), hue="payload", log=True),),
    "TH6": (Plot("Latency ratio, thread against process", ("latency_ratio_cpu_thread", "latency_ratio_cpu_process"),
                 x="switch_interval_ms", log=True),),
    "CO7": (Plot("Longest heartbeat gap", ("*_max_heartbeat_gap",), x="n", hue="loop"),),
    # One part per selector decides at its largest N; the smaller N are figures of that part
    # (wait_cost_at_<N>), so each N is a series of bars over the selectors.
    "IO7": (Plot("Cost of one wait with N descriptors watched (one ready), per selector",
                 ("wait_cost_at_*", "wait_cost"), log=True),),
}


@dataclass
class Series:
    label: str
    points: list[tuple] = field(default_factory=list)  # (x, value, low, high)
    env: str = ""  # the environment's column heading, where series are per environment
    variant: str = ""  # the rest of the label: a figure name, a hue value


@dataclass
class Drawn:
    claim: str
    plot: Plot
    file: str  # plots/<ID>-<n>-<slug>.png
    png: bytes
    alt: str


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50]


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _spread(fig: dict) -> tuple[float, float]:
    if fig.get("interval"):
        return tuple(fig["interval"])
    if "q1" in fig:
        return fig["q1"], fig["q3"]
    return fig["value"], fig["value"]


def collect(view: ClaimView, plot: Plot, env_axis: bool = False) -> tuple[dict[str, Series], list[dict], str, dict]:
    """Series keyed by label, the checks on the plotted figures, their unit, one run's settings.

    With env_axis the environments are the categories on the x axis and each series is a variant
    (a figure, a hue value): for a plot whose x param took a single value, where one point per
    environment and variant would all sit on top of each other.
    """
    series: dict[str, Series] = {}
    checks, unit, settings = [], "", {}
    several_envs = sum(1 for c in view.cells if c.parts) > 1 and not env_axis
    names = {c.column.key: heading(c.column, [c.column for c in view.cells]) for c in view.cells}
    for cell in view.cells:
        for part in cell.parts:
            settings = settings or part.info["settings"]
            for name, fig in part.info["figures"].items():
                if not _matches(name, plot.y) or not _number(fig.get("value")):
                    continue
                if plot.x is not None and plot.x not in part.params:
                    continue
                unit = unit or fig.get("unit", "")
                bits = [names[cell.column.key]] if several_envs else []
                if len(plot.y) > 1 or any(ch in "*?[" for p in plot.y for ch in p):
                    bits.append(name)
                if plot.hue and plot.hue in part.params:
                    bits.append(f"{plot.hue}={part.params[plot.hue]}")
                several_figures = len(plot.y) > 1 or any(ch in "*?[" for p in plot.y for ch in p)
                if env_axis:
                    x = names[cell.column.key]
                elif plot.x:
                    x = part.params[plot.x]
                elif several_figures:  # bars per figure, one per environment: the figures are the categories
                    x, bits = name, [b for b in bits if b != name]
                else:
                    x = _category(part, plot)
                label = " · ".join(bits) or (names[cell.column.key] if several_figures and not plot.x and not env_axis
                                             else name)
                s = series.setdefault(label, Series(label, env=bits[0] if several_envs else "",
                                                    variant=" · ".join(bits[1:] if several_envs else bits)))
                if all(p[0] != x for p in s.points):  # a baseline measured beside several parts: its first
                    lo, hi = _spread(fig)
                    s.points.append((x, fig["value"], lo, hi))
            checks += [c for c in part.info["checks"] if _matches(c["name"], plot.y) and _number(c["threshold"])]
    return series, checks, unit, settings


def _category(part: Part, plot: Plot) -> str:
    params = {k: v for k, v in part.params.items() if k != plot.hue}
    return ", ".join(str(v) for v in params.values()) or part.name.split("[")[0].removeprefix("test_")


def _axis_scale(unit: str, values: list[float]) -> tuple[float, str]:
    """Factor and unit label for an axis of time or bytes, from its median magnitude."""
    if split_unit(unit)[0] not in TIME_UNITS and split_unit(unit)[0] not in BYTE_UNITS:
        return 1.0, unit
    mid = sorted(abs(v) for v in values)[len(values) // 2] or 1.0
    shown, name = scaled(mid, unit)
    return shown / mid, name


def dodge(xs: list[float], count: int, log: bool) -> list[float]:
    """Offsets for `count` series sharing x values, so their points and whiskers sit side by side:
    together they span at most 6% of the axis (in decades on a log axis), centred on each x."""
    if count < 2 or len(xs) < 2:
        return [0.0] * count
    span = math.log10(xs[-1] / xs[0]) if log else xs[-1] - xs[0]
    step = 0.06 * span / count
    return [(i - (count - 1) / 2) * step for i in range(count)]


MARKERS, DASHES = ("o", "s", "^", "D", "v", "P"), ("-", "--", ":", "-.")


def styles(series: dict[str, Series]) -> dict[str, dict]:
    """Where series are environments × variants: a colour per environment, a marker and dash per variant."""
    envs = list(dict.fromkeys(s.env for s in series.values()))
    variants = list(dict.fromkeys(s.variant for s in series.values()))
    if len(envs) < 2 or len(variants) < 2 or "" in envs:
        return {}
    return {s.label: {"color": f"C{envs.index(s.env) % 10}", "marker": MARKERS[variants.index(s.variant) % 6],
                      "linestyle": DASHES[variants.index(s.variant) % 4]} for s in series.values()}


def _lines(ax, series: dict[str, Series], plot: Plot, factor: float) -> None:
    xs = sorted({p[0] for s in series.values() for p in s.points})
    log_x = xs[0] > 0 and xs[-1] / xs[0] >= 50
    shared = len(series) > 1 and any(len({p[0] for p in s.points} & {p[0] for p in t.points}) > 0
                                     for i, s in enumerate(series.values())
                                     for t in list(series.values())[i + 1:])
    offsets = dodge(xs, len(series), log_x) if shared else [0.0] * len(series)
    style = styles(series)
    for s, off in zip(series.values(), offsets):
        pts = sorted(s.points, key=lambda p: sort_key(p[0]))
        err = [[max(0.0, (p[1] - p[2]) * factor) for p in pts], [max(0.0, (p[3] - p[1]) * factor) for p in pts]]
        at = [p[0] * 10 ** off if log_x else p[0] + off for p in pts]
        ax.errorbar(at, [p[1] * factor for p in pts], yerr=err, markersize=4, capsize=3, label=s.label,
                    **style.get(s.label, {"marker": "o"}))
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: tick(v)))
    if len(xs) <= 12:
        ax.set_xticks(xs)
        ax.minorticks_off()
    ax.set_xlabel(plot.x)


def _bars(ax, series: dict[str, Series], plot: Plot, factor: float, order: list | None = None) -> bool:
    """Grouped bars, one per series in each category; horizontal when the categories are many."""
    present = {p[0] for s in series.values() for p in s.points}
    cats = [c for c in order if c in present] if order else sorted(present, key=sort_key)
    width = 0.8 / len(series)
    horizontal = len(cats) > 6
    for i, s in enumerate(series.values()):
        pos = {p[0]: p for p in s.points}
        at = [j + i * width for j, c in enumerate(cats) if c in pos]
        size = [pos[c][1] * factor for c in cats if c in pos]
        err = [[max(0.0, (pos[c][1] - pos[c][2]) * factor) for c in cats if c in pos],
               [max(0.0, (pos[c][3] - pos[c][1]) * factor) for c in cats if c in pos]]
        if horizontal:
            ax.barh(at, size, width, xerr=err, capsize=3, label=s.label)
        else:
            ax.bar(at, size, width, yerr=err, capsize=3, label=s.label)
    ticks, names = [j + 0.4 - width / 2 for j in range(len(cats))], [str(c) for c in cats]
    if horizontal:
        ax.set_yticks(ticks, names, fontsize=8)
        ax.invert_yaxis()
    else:
        ax.set_xticks(ticks, names, rotation=20 if len(cats) > 4 else 0, fontsize=8)
    return horizontal


def _marks(ax, plot: Plot, checks: list[dict], settings: dict, unit: str, factor: float, horizontal: bool) -> None:
    """The notes' reference values, the run's own thresholds, and a marked x value (plot.vline)."""
    line = ax.axvline if horizontal else ax.axhline
    for value, label in plot.refs:
        line(value * factor, color="grey", linestyle=":", linewidth=1, label=label)
    for op, threshold in sorted({(c["op"], c["threshold"]) for c in checks}, key=lambda t: t[1]):
        line(threshold * factor, color="red", linestyle="--", linewidth=1,
             label=f"threshold {OP_SIGNS[op]} {fmt(threshold, unit)}")
    if plot.vline is not None and not horizontal:
        key, default, label = plot.vline
        at = settings.get(key, default) if _number(settings.get(key, default)) else default
        shown = f"{at:,}" if isinstance(at, int) else plain(at)
        ax.axvline(at, color="purple", linestyle="-.", linewidth=1, label=f"{label} = {shown}")


def draw(view: ClaimView, plot: Plot, index: int) -> tuple[Drawn | None, str]:
    """The plot as PNG bytes, or None and the note saying why it was left out."""
    series, checks, unit, settings = collect(view, plot)
    if not series:
        by = f" by {plot.x}" if plot.x else ""
        return None, f"Plot “{plot.title}” left out: no run recorded {', '.join(plot.y)}{by}."
    xs = {p[0] for s in series.values() for p in s.points}
    single_x = plot.x is not None and len(xs) == 1  # no sweep here: environments side by side instead
    title = plot.title
    if single_x:
        title += f" ({plot.x} = {tick(next(iter(xs))) if _number(next(iter(xs))) else next(iter(xs))})"
        series, checks, unit, settings = collect(view, plot, env_axis=True)
    values = [v for s in series.values() for _, v, _, _ in s.points]
    factor, axis_unit = _axis_scale(unit, values)
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=100)
    horizontal = False
    if single_x:
        cols = [c.column for c in view.cells]
        _bars(ax, series, plot, factor, order=[heading(c, cols) for c in cols])
        ax.set_xlabel("environment")
    elif plot.x is not None and all(_number(x) for s in series.values() for x, *_ in s.points):
        _lines(ax, series, plot, factor)
    else:
        horizontal = _bars(ax, series, plot, factor)
        if plot.x:
            (ax.set_ylabel if horizontal else ax.set_xlabel)(plot.x)
    _marks(ax, plot, checks, settings, unit, factor, horizontal)
    value_axis = ax.xaxis if horizontal else ax.yaxis
    if plot.log and min(values) > 0:
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
    name = axis_unit if axis_unit not in ("", "x") else ("ratio" if axis_unit == "x" else "value")
    value_axis.set_label_text(name)
    value_axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: tick(v)))
    ax.set_title(f"{view.id}: {title}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    file = f"plots/{view.id}-{index}-{slugify(plot.title)}.png"
    alt = f"{view.id}: {title}"  # short: the legend inside the image names the series
    return Drawn(view.id, plot, file, buf.getvalue(), alt), ""


def draw_all(views: list[ClaimView]) -> tuple[dict[str, list[Drawn]], dict[str, list[str]]]:
    drawn: dict[str, list[Drawn]] = {}
    notes: dict[str, list[str]] = {}
    for view in views:
        if not any(c.parts for c in view.cells):
            continue
        for i, plot in enumerate(PLOTS.get(view.id, ()), start=1):
            d, note = draw(view, plot, i)
            if d is not None:
                drawn.setdefault(view.id, []).append(d)
            else:
                notes.setdefault(view.id, []).append(note)
    return drawn, notes
