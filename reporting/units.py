"""The notes' own question, answered per environment: which unit, and what does each cost here?

One table per environment, a row per unit (a process per start method, a thread, an
interpreter, a coroutine) and a column per axis the notes compare them on. No cell is measured
here: each reads a figure that a claim's experiment recorded in that environment's run
(SOURCES below says which), so every cell links to the claim page that holds its evidence. A
cell that no run in that environment recorded reads "n/m" with the reason; NOT_APPLICABLE
names the cells a unit cannot have at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness import environment as envkey
from reporting.model import ClaimView
from reporting.numbers import fmt, fmt_range
from reporting.runs import Column, full_scale_key, heading

COLUMNS = (
    "creation",
    "switch, net of the channel",
    "resident memory",
    "reserved memory",
    "cores, 2 units of pure-Python work",
    "a native crash leaves the others running",
    "memory shared by default",
    "a shared counter needs a lock",
)
START_METHODS = ("fork", "forkserver", "spawn")


@dataclass(frozen=True)
class Source:
    """A figure one claim's experiment records: `figure` in the parts whose name contains `part`.

    read: "value" (the figure itself), or a count read as yes/no: "zero-is-yes" (no counterexample
    seen: yes), "zero-is-no", "positive-is-yes".
    """
    claim: str
    figure: str
    part: str = ""
    read: str = "value"
    note: str = ""  # what the figure is, where the column's name does not say it all
    missing: str = ""  # why a run may lack it by design, said where the figure is absent


def _process(method: str) -> dict[str, tuple[Source, ...]]:
    world = "process-pipe" if method == "fork" else f"process-pipe-{method}"
    crash = "[segfault]" if method == "fork" else f"[segfault-{method}]"
    return {
        "creation": (Source("PR3", f"process-{method}_create", f"process-{method}"),),
        "switch, net of the channel": (Source("PR3", f"{world}_switch_net_of_channel",
                                              note=f"over a pipe, the echo process started by {method}"),),
        "resident memory": (Source("PR1", "child_unique_memory", f"[{method}]",
                                   note="USS: memory only the child maps, before it writes"),),
        "reserved memory": (Source("PR1", "child_reserved_memory", f"[{method}]",
                                   note="the child's address space (VMS); a forked child inherits pytest's"),),
        "cores, 2 units of pure-Python work": (Source(
            "PR4", "worker_cores", f"2-workers-{method}",
            missing="" if method == "fork" else "PR4 runs this start method at full scale only (--scale full)"),),
        "a native crash leaves the others running": (Source("PR2", "rounds_sibling_dead_after_crash", crash,
                                                            "zero-is-yes", f"segfault, {method} start method"),),
        "memory shared by default": (Source("PR1", "parent_sees_child_writes", f"[{method}]", "positive-is-yes"),),
    }


SOURCES: dict[str, dict[str, tuple[Source, ...]]] = {
    **{f"process ({m})": _process(m) for m in START_METHODS},
    "thread": {
        "creation": (Source("TH3", "thread_create", "[thread]"),),
        "switch, net of the channel": (Source("TH3", "thread-queue_switch_net_of_channel", "[queue]",
                                              note="queue.SimpleQueue"),),
        "resident memory": (Source("CO5", "resident_per_thread", "[thread]"),),
        "reserved memory": (Source("CO5", "vms_per_thread", "[thread]"),),
        "cores, 2 units of pure-Python work": (Source("TH4", "thread_cores", "cpu_bound_threads_do_not_scale[2-"),),
        "a native crash leaves the others running": (Source("TH2", "rounds_process_survived", "[segfault]",
                                                            "positive-is-yes"),),
        "memory shared by default": (Source("TH1", "thread_writes_unseen_by_main", "", "zero-is-yes"),),
        "a shared counter needs a lock": (Source("TH1", "lost_updates_unlocked", "", "positive-is-yes"),),
    },
    "interpreter": {
        "creation": (Source("IN1", "creation_per_interpreter", note="create() to the end of its first statement"),),
        "switch, net of the channel": (Source("IN1", "interpreter_switch_net_of_channel",
                                              note="over an os.pipe, a thread of the main interpreter and one in "
                                                   "another"),),
        "resident memory": (Source("IN1", "resident_growth_per_interpreter", note="an idle interpreter"),),
        "reserved memory": (Source("IN1", "reserved_growth_per_interpreter",
                                   note="the address space an idle interpreter adds (VmSize)"),),
        "cores, 2 units of pure-Python work": (Source("IN1", "interpreter_cores", "2-interpreters"),),
        "a native crash leaves the others running": (Source("IN2", "rounds_host_survived", "", "positive-is-yes"),),
        "memory shared by default": (Source("IN1", "interpreter_writes_seen_by_main", "2-interpreters",
                                            "positive-is-yes", "another interpreter's writes to a module global"),),
    },
    "coroutine": {
        "creation": (Source("PR3", "coroutine_create", "[coroutine]"),),
        "switch, net of the channel": (Source("CO4", "coroutine-future_switch_incl_channel", "[asyncio]",
                                              note="a bare future, asyncio, the future included"),),
        "resident memory": (Source("CO5", "resident_per_task", "[coroutine]"),),
        "reserved memory": (Source("CO5", "vms_per_task", "[coroutine]"),),
        "a native crash leaves the others running": (Source("CO8", "rounds_host_survived", "[segfault]",
                                                            "positive-is-yes", "segfault in one task of the loop"),),
        "memory shared by default": (Source("CO3", "lost_updates", "await_inside", "positive-is-yes",
                                            "tasks that interleave inside an update overwrite each other"),),
        "a shared counter needs a lock": (Source("CO3", "lost_updates_total", "without_await", "positive-is-yes",
                                                 "no await inside the update"),),
    },
}
NOT_APPLICABLE = {
    **{(f"process ({m})", "a shared counter needs a lock"): "processes share no memory by default"
       for m in START_METHODS},
    ("coroutine", "cores, 2 units of pure-Python work"): "coroutines of one loop run on its one thread",
    ("interpreter", "a shared counter needs a lock"): "interpreters share no Python objects (PEP 684)",
}


@dataclass
class UnitCell:
    text: str  # for a page: the value and its interval
    short: str  # for the README: the value alone
    claim: str = ""  # the claim page holding its evidence
    anchor: str = ""
    value: object = None
    unit: str = ""
    interval: list | None = None
    source: Source | None = None


def _lookup(views: dict[str, ClaimView], col_key: str, src: Source) -> tuple[dict, object] | None:
    view = views.get(src.claim)
    if view is None:
        return None
    cell = next((c for c in view.cells if c.column.key == col_key), None)
    if cell is None:
        return None
    for part in cell.parts:
        if src.part in part.name and src.figure in part.info.get("figures", {}):
            return part.info["figures"][src.figure], cell
    return None


def _read(fig: dict, src: Source) -> tuple[str, str]:
    value, unit = fig.get("value"), fig.get("unit", "")
    if src.read == "value":
        short = fmt(value, unit)
        if fig.get("interval") and fmt(fig["interval"][0], unit) != fmt(fig["interval"][1], unit):
            lo, hi = fig["interval"]
            return f"{short} ({fmt_range(lo, hi, unit)})", short
        return short, short
    count = value or 0
    yes = {"zero-is-yes": count == 0, "zero-is-no": count != 0, "positive-is-yes": count > 0}[src.read]
    word = "yes" if yes else "no"
    return f"{word} ({fmt(value, unit)})", word


def unit_cell(views: dict[str, ClaimView], column: Column, unit: str, axis: str) -> UnitCell:
    if (unit, axis) in NOT_APPLICABLE:
        why = NOT_APPLICABLE[(unit, axis)]
        return UnitCell(f"cannot apply: {why}", "n/a")
    sources = SOURCES.get(unit, {}).get(axis, ())
    # The quick column first; then the same environment's full-scale column, where a whole full-scale run was
    # published (a part that only the full scale runs, e.g. PR4's other start methods), marked as such.
    for key, scale_note in ((column.key, ""), (full_scale_key(column.key), " (full scale)")):
        for src in sources:
            found = _lookup(views, key, src)
            if found is None:
                continue
            fig, cell = found
            text, short = _read(fig, src)
            return UnitCell(text + scale_note, short + scale_note, src.claim, cell.column.anchor, fig.get("value"),
                            fig.get("unit", ""), fig.get("interval"), src)
    if not sources:
        return UnitCell("no experiment measures it yet", "n/m")
    return UnitCell(sources[0].missing or f"{sources[0].claim} recorded no {sources[0].figure} in this environment's "
                    "run", "n/m")


def row_label(unit: str, column: Column) -> str:
    if unit == "thread" and "no_gil" in envkey.traits(column.env):
        return "thread (GIL off)"
    return unit


def table(views: list[ClaimView], column: Column) -> list[tuple[str, list[UnitCell]]]:
    by_id = {v.id: v for v in views}
    return [(row_label(unit, column), [unit_cell(by_id, column, unit, axis) for axis in COLUMNS])
            for unit in SOURCES]


HEADERS = {  # short headings, so that a table line stays within the report's width
    "creation": "creation", "switch, net of the channel": "switch (net)", "resident memory": "resident",
    "reserved memory": "reserved", "cores, 2 units of pure-Python work": "cores, 2 units",
    "a native crash leaves the others running": "crash contained", "memory shared by default": "memory shared",
    "a shared counter needs a lock": "counter needs a lock",
}
TABLES = (COLUMNS[:2], COLUMNS[2:5], COLUMNS[5:])  # a page's tables: time, then space and cores, then properties


def ref(claim_id: str) -> str:
    return f"u-{claim_id}"  # its own reference label: the verdict matrix may define [ID] on the same page


def _rows(rows, axes, text) -> tuple[list[list[str]], list[str], dict[str, str]]:
    """Table rows over `axes`, each cell `text(cell)` linked by reference to its claim's evidence; the
    reasons of the n/m and n/a cells, to go below; the references used."""
    out, reasons, refs = [], [], {}
    for label, cells in rows:
        line = [label]
        for axis, c in zip(COLUMNS, cells):
            if axis not in axes:
                continue
            if c.source is None:
                line.append(c.short)
                reasons.append(f"{label}, {HEADERS[axis]}: {c.short}, {c.text}")
            else:
                if c.source.note:
                    reasons.append(f"{label}, {HEADERS[axis]}: {c.source.note}")
                refs.setdefault(c.claim, c.anchor)
                line.append(f"[{text(c)}][{ref(c.claim)}]")
        out.append(line)
    return out, reasons, refs


def page_tables(rows, md_table, claim_link) -> str:
    """A page's tables (TABLES), with intervals, what some cells are, the n/m reasons and the links."""
    parts, reasons, refs = [], [], {}
    for axes in TABLES:
        body, why, used = _rows(rows, axes, lambda c: c.text)
        parts.append(md_table(["unit", *(HEADERS[a] for a in axes)], body))
        reasons += why
        refs.update(used)
    text = "\n\n".join(parts)
    if reasons:
        text += "\n\nWhat some cells are, and why others have no figure:\n\n" + "\n".join(f"- {r}" for r in reasons)
    return text + "\n\n" + "\n".join(f"[{ref(cid)}]: {claim_link(cid, a)}" for cid, a in refs.items())


def readme_table(rows, md_table, claim_link) -> str:
    """The README's table: values only, each linked by reference to its claim's evidence."""
    body, _, refs = _rows(rows, COLUMNS, lambda c: c.short)
    return md_table(["unit", *(HEADERS[a] for a in COLUMNS)], body) + "\n\n" + "\n".join(
        f"[{ref(cid)}]: {claim_link(cid, a)}" for cid, a in refs.items())


def csv(views: list[ClaimView], cols: list[Column]) -> pd.DataFrame:
    records = []
    for column in cols:
        for label, cells in table(views, column):
            for axis, c in zip(COLUMNS, cells):
                records.append({
                    "environment": heading(column, cols), "environment_key": column.key, "unit": label,
                    "axis": axis, "value": c.value if c.source else "", "unit_of_value": c.unit,
                    "interval_low": c.interval[0] if c.interval else "", "interval_high": c.interval[1] if c.interval
                    else "", "text": c.text, "claim": c.claim, "figure": c.source.figure if c.source else "",
                    "part_filter": c.source.part if c.source else ""})
    return pd.DataFrame(records)
