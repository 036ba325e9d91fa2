"""Pages from templates (templates/): the index, a page per claim, the README's block.

Markdown and HTML come from the same context, built here; the templates only lay it out.
Markdown tables go through ``md_table``, which keeps every line within MAX_LINE characters.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from harness import catalogue
from reporting import compare
from reporting.model import (
    Cell,
    ClaimView,
    deciding,
    figure_text,
    in_words,
    interval_text,
    notes,
    outcome,
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


class TooWide(ValueError):
    pass


def md_table(headers: list[str], rows: list[list], max_line: int = MAX_LINE, cut: bool = True) -> str:
    """A GitHub table without padding; the longest cells are cut with … until each line fits.

    With cut=False a line that does not fit raises TooWide instead (the caller has a shorter form).
    """
    head = [md_cell(h) for h in headers]
    body = [[md_cell(c) for c in row] for row in rows]
    lines = []
    for row in [head, *body]:
        while len(line := "| " + " | ".join(row) + " |") > max_line:
            if not cut:
                raise TooWide(f"a table line of {len(line)} characters")
            cuttable = [j for j in range(len(row)) if not LINK.search(row[j])]  # never cut a link
            if not cuttable:
                break
            i = max(cuttable, key=lambda j: len(row[j]))
            excess = len(line) - max_line
            if len(row[i]) <= excess + 1:
                break
            row[i] = row[i][: len(row[i]) - excess - 1].rstrip("\\") + "…"
        lines.append(line)
    lines.insert(1, "|" + "|".join("---" for _ in head) + "|")
    return "\n".join(lines)


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
    root: str  # to the project root (experiment files)

    def claim(self, claim_id: str, anchor: str = "") -> str:
        return f"{self.pages}{claim_id}.{self.ext}" + (f"#{anchor}" if anchor else "")

    def plot(self, drawn: Drawn) -> str:
        return f"{self.plots}{drawn.file}"

    def file(self, path: str) -> str:
        return f"{self.root}{path}"


def rel(target: Path, start: Path) -> str:
    text = os.path.relpath(target, start).replace(os.sep, "/")
    return "" if text == "." else text + "/"


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
            "deciding": [in_words(ch) for _, ch in deciding(c)],
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
    whys = list(dict.fromkeys(w for w in check_whys if w))
    all_notes = list(dict.fromkeys(n for c in view.cells for n in notes(c)))
    rows = compare.across(view)
    labels = names
    return {
        "claim": view.claim, "view": view, "cells": cells, "drawn": drawn, "plot_notes": plot_notes,
        "check_headers": check_headers, "check_rows": check_rows, "check_whys": check_whys, "whys": whys,
        "figure_headers": (["environment"] if several else []) + ["part", "figure", "value"],
        "figure_rows": figure_rows, "notes": all_notes, "several": several,
        "comparison": [r.cells(labels) for r in rows], "comparison_headers": compare.HEADERS,
        "comparison_pairs": list(dict.fromkeys((labels[r.a], labels[r.b]) for r in rows)),
        "flips": view.flips,
    }


def environment(kind: str) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=(kind == "html"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(md_table=md_table, label=catalogue.label, fmt=fmt, plural=plural)
    return env


def matrix_rows(views: list[ClaimView], links: Links, short: bool = False,
                readme: bool = False) -> tuple[list[list[str]], list[str]]:
    """The verdict matrix's rows, and the reference-link definitions they use (they keep lines short).

    In the report each cell links to that environment's evidence; in the README the ID links to
    the page and a last column links to the experiment file.
    """
    rows, refs = [], []
    for v in views:
        cells = []
        for i, c in enumerate(v.cells, start=1):
            text = verdict_text(c, short, bold=v.flips and c.decided)
            if not readme:
                refs.append(f"[{v.id}-{i}]: {links.claim(v.id, c.column.anchor)}")
                text = f"[{text}][{v.id}-{i}]"
            cells.append(text)
        row = [f"[{v.id}]({links.claim(v.id)})", v.claim.title, *cells]
        if readme:
            if v.claim.file:
                refs.append(f"[{v.id}-code]: {links.file(v.claim.file)}")
            row.append(f"[code][{v.id}-code]" if v.claim.file else "—")
        rows.append(row)
    return rows, refs


def fit_matrix(views: list[ClaimView], cols: list[Column], links: Links, readme: bool) -> tuple[str, bool]:
    """The matrix with full verdict names if its lines fit, else with short ones; and which it used."""
    headers = ["ID", "claim", *[heading(c, cols) for c in cols]] + (["experiment"] if readme else [])
    for short in (False, True):
        rows, refs = matrix_rows(views, links, short, readme)
        try:
            return md_table(headers, rows, cut=short) + "\n\n" + "\n".join(refs), short
        except TooWide:
            continue
    raise AssertionError("unreachable: the short form cuts instead of raising")


def readme_block(views: list[ClaimView], cols: list[Column], links: Links, report_link: str) -> str:
    """The README's matrix: ID | claim | one column per environment | experiment, at most 8 KB."""
    env = environment("md")
    table, short = fit_matrix(views, cols, links, readme=True)
    machines: dict[str, list[str]] = {}
    for e in env_rows(cols):
        where = f"{e['cpu']}, {e['cores']}, {e['kernel']}"
        where += f" ({e['origin']})" if e["origin"] != "this machine" else ""
        machines.setdefault(where, []).append(e["label"])
    ctx = {"cols": cols, "machines": list(machines.items()), "report_link": report_link, "table": table,
           "short": short,
           "commits": ", ".join(dict.fromkeys(r.commit[:10] for c in cols for r in c.runs)),
           "dates": sorted({r.datetime[:10] for c in cols for r in c.runs})}
    text = env.get_template("readme.md.j2").render(ctx)
    if len(text.encode()) > README_MAX and not short:
        rows, refs = matrix_rows(views, links, True, readme=True)
        headers = ["ID", "claim", *[heading(c, cols) for c in cols], "experiment"]
        ctx.update(table=md_table(headers, rows) + "\n\n" + "\n".join(refs), short=True)
        text = env.get_template("readme.md.j2").render(ctx)
    if len(text.encode()) > README_MAX:
        raise ValueError(f"the README's verdict block would exceed {README_MAX:,} bytes with {len(cols)} environments")
    return text
