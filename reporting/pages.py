"""Pages from templates (templates/): the index, a page per claim, the README's block.

Markdown and HTML come from the same context, built here; the templates only lay it out.
Markdown tables go through ``md_table``, which keeps every line within MAX_LINE (counted in UTF-8 bytes).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from harness import catalogue
from harness.thresholds import RULES
from reporting import compare, placeholders
from reporting.model import (
    Cell,
    ClaimView,
    deciding,
    failable_checks,
    figure_text,
    in_words,
    interval_text,
    notes,
    outcome,
    reading_verdicts,
    shared_conditions,
    varying_conditions,
)
from reporting.numbers import OP_SIGNS, fmt, plural
from reporting.plots import Drawn
from reporting.runs import Column, heading

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
MAX_LINE = 200  # no published Markdown table line is longer
README_MAX = 8 * 1024
LINK = re.compile(r"\]\(|\]\[")
SHORT = {"holds-with-caveat": "caveat", catalogue.NOT_MEASURED: "n/m", "not-testable": "n/t"}


def md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def width(line: str) -> int:
    """A line's length in UTF-8 bytes: within MAX_LINE however it is counted (µ, ×, †, ⚠ count 2–3)."""
    return len(line.encode("utf-8"))


class TooWide(ValueError):
    pass


def _line(row: list[str]) -> str:
    return "| " + " | ".join(row) + " |"


def _cut(row: list[str], max_line: int) -> str:
    """Cut the longest cells that hold no link with … until the line fits (or nothing is left to cut)."""
    while width(line := _line(row)) > max_line:
        cuttable = [j for j in range(len(row)) if not LINK.search(row[j]) and len(row[j]) > 1]
        if not cuttable:
            break
        i = max(cuttable, key=lambda j: width(row[j]))
        keep = max(0, len(row[i]) - (width(line) - max_line) - 1)
        row[i] = row[i][:keep].rstrip("\\").rstrip() + "…"
    return line


def md_table(headers: list[str], rows: list[list], max_line: int = MAX_LINE, cut: bool = True,
             keys: dict[int, str] | None = None) -> str:
    """A GitHub table without padding, every line within max_line (counted by ``width``).

    When a line does not fit, the columns named in ``keys`` ({column: prefix}) are replaced, one
    after another, by short keys (P1, P2, … in order of first appearance) that a list below the
    table spells out. Only then are the longest cells cut with …; with cut=False a line that still
    does not fit raises TooWide instead (the caller has a shorter form).
    """
    head = [md_cell(h) for h in headers]
    body = [[md_cell(c) for c in row] for row in rows]
    legends: list[str] = []
    pending = list((keys or {}).items())
    while any(width(_line(r)) > max_line for r in [head, *body]) and pending:
        column, prefix = pending.pop(0)
        if column >= len(head):
            continue
        names: dict[str, str] = {}
        for row in body:
            row[column] = names.setdefault(row[column], f"{prefix}{len(names) + 1}")
        legends += [f"- {key}: {value}" for value, key in names.items()]
    lines = []
    for row in [head, *body]:
        line = _line(row)
        if width(line) > max_line:
            if not cut:
                raise TooWide(f"a table line of {width(line)} bytes")
            line = _cut(list(row), max_line)
        lines.append(line)
    lines.insert(1, "|" + "|".join("---" for _ in head) + "|")
    table = "\n".join(lines)
    return table + ("\n\n" + "\n".join(legends) if legends else "")


def verdict_text(c: Cell, short: bool = False, bold: bool = False) -> str:
    text = (SHORT.get(c.verdict, c.verdict) if short else catalogue.label(c.verdict))
    if bold:
        text = f"**{text}**"
    if c.surprising:
        text += " ⚠" if short else f" (expected {c.expected})"
    if c.run is not None and c.run.stale:
        text += " (stale)" if not short else " †"
    return text


@dataclass
class Links:
    """Relative addresses from where a page lives to the pages, plots and experiment files."""
    pages: str  # to the folder holding <ID>.<ext>
    ext: str
    plots: str
    root: str | None  # to the project root (experiment files); None: the pages lie outside it

    def claim(self, claim_id: str, anchor: str = "") -> str:
        return f"{self.pages}{claim_id}.{self.ext}" + (f"#{anchor}" if anchor else "")

    def plot(self, drawn: Drawn) -> str:
        return f"{self.plots}{drawn.file}"

    def file(self, path: str) -> str:
        return f"{self.root}{path}"


def rel(target: Path, start: Path) -> str:
    text = os.path.relpath(target, start).replace(os.sep, "/")
    return "" if text == "." else text + "/"


def repo_root_from(start: Path) -> str | None:
    """The relative address from a page's folder to the repository root (for experiment files),
    or None when the page lies outside the repository: a link from there would not survive a copy
    (../../../work/main/experiments/…), so the pages name the file as code instead."""
    start = Path(start).resolve()
    return rel(ROOT, start) if start == ROOT or ROOT in start.parents else None


def file_link(start: Path, path: str) -> str | None:
    root = repo_root_from(start)
    return None if root is None or not path else root + path


def env_rows(cols: list[Column]) -> list[dict]:
    rows = []
    for col in cols:
        dates = sorted(r.datetime[:16].replace("T", " ") for r in col.runs)
        commits = list(dict.fromkeys(r.commit[:10] or "unversioned" for r in col.runs))
        stale = [r for r in col.runs if r.stale]
        rows.append({
            "key": col.key, "anchor": col.anchor, "label": col.label, "origin": col.origin or "this machine",
            "cpu": col.env["cpu_model"], "cores": plural(col.env["cores"], "core"),
            "cpus_available": col.env["cpus_available"], "kernel": f"{col.env['system']} {col.env['kernel']}",
            "machine": col.env["machine"], "gil": col.env["gil"], "jit": col.env["jit"],
            "commits": ", ".join(commits), "dates": f"{dates[0]} – {dates[-1]}" if dates[0] != dates[-1] else dates[0],
            "runs": plural(len(col.runs), "run"), "stale": "; ".join(f"{r.path.name}: {r.stale}" for r in stale),
        })
    return rows


def claim_context(view: ClaimView, drawn: list[Drawn], plot_notes: list[str], several: bool) -> dict:
    cols = [c.column for c in view.cells]
    names = {c.column.key: heading(c.column, cols) for c in view.cells}
    cells = []
    for c in view.cells:
        cells.append({
            "cell": c, "anchor": c.column.anchor, "label": names[c.column.key], "verdict": verdict_text(c),
            "state": c.verdict, "expected": c.expected, "surprising": c.surprising,
            "run": c.run.path.name if c.run else "", "commit": (c.run.commit[:10] if c.run else ""),
            "date": (c.run.datetime[:16].replace("T", " ") if c.run else ""),
            "stale": c.run.stale if c.run else "",
            "deciding": [(f"{c.part_label(p)}: " if len(c.parts) > 1 else "") + in_words(ch) for p, ch in deciding(c)],
            "measured": [c.part_label(p) for p in c.parts],
            "missing": [(m["part"], m["reason"]) for m in c.missing],
            "reasons": c.reasons,
            "shared": ", ".join(f"{k}={v}" for k, v in shared_conditions(c).items()),
            "varying": [(k, ", ".join(map(str, vs))) for k, vs in varying_conditions(c).items()],
        })
    check_headers = (["environment"] if several else []) + ["part", "role", "check", "value", "needs", "interval",
                                                            "result"]
    check_rows, check_whys, figure_rows = [], [], []
    for c in view.cells:
        for part, ch in c.checks():
            unit = ch.get("unit", "")
            row = [c.part_label(part), ch["role"], ch["name"], fmt(ch["value"], unit),
                   f"{OP_SIGNS[ch['op']]} {fmt(ch['threshold'], unit)}", interval_text(ch) or "—", outcome(ch)]
            check_rows.append(([names[c.column.key]] if several else []) + row)
            check_whys.append(ch.get("why", ""))
        for part in c.parts:
            for name, fig in part.info["figures"].items():
                figure_rows.append(([names[c.column.key]] if several else []) +
                                   [c.part_label(part), name, figure_text(fig)])
        for m in c.missing:  # the figures that showed a part could not be measured here
            for name, fig in ((m.get("evidence") or {}).get("figures") or {}).items():
                figure_rows.append(([names[c.column.key]] if several else []) +
                                   [f"{m['part']} (not measured)", name, figure_text(fig)])
    fail_headers = (["environment"] if several else []) + ["part", "check", "rule", "needs", "this world",
                                                           "opposite world", "could it fail?"]
    fail_rows, opposite_worlds = [], {}
    for c in view.cells:
        for label, ch, verdict in failable_checks(c, view.claim):
            unit, other = ch.get("unit", ""), ch.get("opposite")
            here = fmt(ch["value"], unit) + (f" ({interval_text(ch)})" if ch.get("interval") else "")
            there = "—" if not other else fmt(other["value"], unit) + (
                f" ({interval_text({**other, 'unit': unit})})" if other.get("interval") else "")
            if other:
                opposite_worlds.setdefault(ch["name"], other["label"])
            fail_rows.append(([names[c.column.key]] if several else []) + [
                label, ch["name"], view.claim.deciding.get(ch["name"], "not deciding"),
                f"{OP_SIGNS[ch['op']]} {fmt(ch['threshold'], unit)}", here, there, verdict])
    whys = list(dict.fromkeys(w for w in check_whys if w))
    all_notes = list(dict.fromkeys(n for c in view.cells for n in notes(c)))
    rows = compare.across(view)
    part_labels = {p.name: c.part_label(p) for c in view.cells for p in c.parts}
    labels = names
    return {
        "claim": view.claim, "view": view, "cells": cells,
        "readings": [[reading, *(catalogue.label(dict(reading_verdicts(c))[reading]) for c in view.cells)]
                     for reading in view.claim.readings],
        "reading_headers": ["reading", *(names[c.column.key] for c in view.cells)],
        "caveat": placeholders.render(view.claim.caveat, view),
        "control": placeholders.render(view.claim.control, view), "drawn": drawn, "plot_notes": plot_notes,
        "check_headers": check_headers, "check_rows": check_rows, "check_whys": check_whys, "whys": whys,
        "fail_headers": fail_headers, "fail_rows": fail_rows, "opposite_worlds": list(opposite_worlds.items()),
        "unfalsified": list(view.claim.unfalsified.items()), "rules": RULES,
        "rules_used": sorted(set(view.claim.deciding.values())),
        "figure_headers": (["environment"] if several else []) + ["part", "figure", "value"],
        "figure_rows": figure_rows, "notes": all_notes, "several": several,
        "comparison": [[part_labels.get(r.part, r.part), r.figure, labels[r.b], *r.cells(labels)[3:]] for r in rows],
        "comparison_headers": ["part", "figure", "B is", *compare.HEADERS[3:]],
        "table_keys": {1: "P", 0: "E"} if several else {0: "P"},
        "comparison_pairs": list(dict.fromkeys((labels[r.a], labels[r.b]) for r in rows)),
        "flips": view.flips,
    }


def environment(kind: str) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=(kind == "html"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(md_table=md_table, label=catalogue.label, fmt=fmt, plural=plural)
    return env


@dataclass(frozen=True)
class Form:
    """One way to lay the verdict matrix out; ``fit_matrix`` takes the first whose lines all fit."""
    short: bool = False  # caveat, n/m, n/t instead of the full verdict names
    title: bool = True  # a column with the claim's short title
    ref_ids: bool = False  # the ID links by reference ([TH4][]) instead of inline


# The index and the README try the same forms; each claim's page links its experiment file.
FORMS = (Form(), Form(short=True), Form(short=True, ref_ids=True), Form(short=True, title=False, ref_ids=True))


def letters(i: int) -> str:
    """a, b, …, z, aa, ab, …: a column's letter in a reference label (TH4a), shorter than -1."""
    text = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        text = chr(ord("a") + r) + text
    return text


def matrix_rows(views: list[ClaimView], links: Links, form: Form = Form(),
                readme: bool = False) -> tuple[list[list[str]], list[str]]:
    """The verdict matrix's rows, and the reference-link definitions they use (they keep lines short).

    In the report each cell links to that environment's evidence ([holds][TH4a]); in the README the
    ID links to the claim's page, which links the experiment file.
    """
    rows, refs = [], []
    for v in views:
        cells = []
        for i, c in enumerate(v.cells):
            text = verdict_text(c, form.short, bold=v.flips and c.decided)
            if not readme:
                refs.append(f"[{v.id}{letters(i)}]: {links.claim(v.id, c.column.anchor)}")
                text = f"[{text}][{v.id}{letters(i)}]"
            cells.append(text)
        if form.ref_ids:
            refs.append(f"[{v.id}]: {links.claim(v.id)}")
            row = [f"[{v.id}][]"]
        else:
            row = [f"[{v.id}]({links.claim(v.id)})"]
        row += ([v.claim.title] if form.title else []) + cells
        rows.append(row)
        for reading in v.claim.readings:  # a sentence with two readings: a row per reading below its claim
            states = [dict(reading_verdicts(c))[reading] for c in v.cells]
            rows.append([f"↳ {v.id}"] + ([f"reading: {reading}"] if form.title else []) +
                        [SHORT.get(t, t) if form.short else catalogue.label(t) for t in states])
    return rows, refs


def compact_heading(col: Column, cols: list[Column]) -> str:
    """A narrower column name for wide matrices: 3.13.5t for CPython 3.13.5t (GIL off) among CPythons."""
    text = heading(col, cols)
    if all(c.env["implementation"] == "CPython" for c in cols):
        text = text.removeprefix("CPython ")
    if col.env["free_threaded"]:
        text = text.replace(" (GIL off)", "", 1)
    return text


def matrix_headers(cols: list[Column], form: Form) -> tuple[list[str], str]:
    """The matrix's header cells: full headings if they fit, else compact ones, else keys E1, E2, …
    spelled out in the returned list (to go below the table)."""
    def headers(names):
        return ["ID", *(["claim"] if form.title else []), *names]
    for name in (heading, compact_heading):
        row = headers([name(c, cols) for c in cols])
        if width(_line([md_cell(h) for h in row])) <= MAX_LINE:
            return row, ""
    keys = [f"E{i}" for i in range(1, len(cols) + 1)]
    return headers(keys), "\n".join(f"- {k}: {md_cell(heading(c, cols))}" for k, c in zip(keys, cols))


def fit_matrix(views: list[ClaimView], cols: list[Column], links: Links, readme: bool,
               max_bytes: int | None = None, around: int = 0) -> tuple[str, Form]:
    """The matrix in the first form whose lines all fit (and, for the README, whose block fits max_bytes
    with `around` bytes of text around it); the last form cuts instead. Without a title column the
    titles follow the table as a list where there is room for them (in the index, Contents has them)."""
    forms = FORMS
    for n, form in enumerate(forms):
        last = n == len(forms) - 1
        rows, refs = matrix_rows(views, links, form, readme)
        headers, legend = matrix_headers(cols, form)
        try:
            table = md_table(headers, rows, cut=last) + (f"\n\n{legend}" if legend else "")
        except TooWide:
            continue
        text = table + "\n\n" + "\n".join(refs)
        if readme and not form.title:
            titles = "\n".join(f"- {v.id}: {v.claim.title}" for v in views)
            if max_bytes is None or width(text + titles) + around + 2 <= max_bytes:
                text = table + "\n\n" + titles + "\n\n" + "\n".join(refs)
        if max_bytes is None or width(text) + around <= max_bytes or last:
            return text, form
    raise AssertionError("unreachable: the last form cuts instead of raising")


def readme_block(views: list[ClaimView], cols: list[Column], links: Links, report_link: str) -> str:
    """The README's matrix: ID | claim | one column per environment | experiment, at most 8 KB."""
    env = environment("md")
    machines: dict[str, list[str]] = {}
    for e in env_rows(cols):
        where = f"{e['cpu']}, {e['cores']}, {e['kernel']}"
        where += f" ({e['origin']})" if e["origin"] != "this machine" else ""
        machines.setdefault(where, []).append(e["label"])
    ctx = {"cols": cols, "machines": list(machines.items()), "report_link": report_link, "table": "",
           "short": True,
           "commits": ", ".join(dict.fromkeys(r.commit[:10] for c in cols for r in c.runs)),
           "dates": sorted({r.datetime[:10] for c in cols for r in c.runs})}
    around = width(env.get_template("readme.md.j2").render(ctx))
    table, form = fit_matrix(views, cols, links, readme=True, max_bytes=README_MAX, around=around)
    text = env.get_template("readme.md.j2").render(ctx, table=table, short=form.short)
    if width(text) > README_MAX:
        raise ValueError(f"the README's verdict block would exceed {README_MAX:,} bytes with {len(cols)} environments")
    return text
