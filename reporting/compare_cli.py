"""`report.py --compare A B`: two runs or environments, verdict flips first, then the figures.

A and B are each a run file, or an environment: its slug (CPython-3.13.5t-x86_64-2cpu-1a2b3c),
its column key (machine folder/slug) or a unique prefix of either, looked up among the runs
under the given paths.
"""
from __future__ import annotations

from pathlib import Path

from harness import catalogue
from reporting import compare as cmp
from reporting import model, pages, runs
from reporting.schema import InputError


def _column(spec: str, cols: list[runs.Column]) -> runs.Column:
    path = Path(spec)
    if path.is_file():
        run = runs.load_run(path, path.parent, False)
        if run is None:
            raise InputError(f"{spec}: an older run without an environment key cannot be compared")
        col = runs.Column(f"{run.slug} ({path.name})", run.env, "")
        col.runs.append(run)
        return col
    found = [c for c in cols if c.key == spec or c.key.split("/")[-1] == spec]
    found = found or [c for c in cols if c.key.startswith(spec) or c.key.split("/")[-1].startswith(spec)]
    if len(found) != 1:
        known = ", ".join(c.key for c in cols) or "none"
        raise InputError(f"{spec}: {'matches several' if found else 'matches no'} environment; known: {known}")
    return found[0]


def _verdicts(views: list[model.ClaimView]) -> str:
    return pages.md_table(["ID", "claim", "A", "B"], [
        [v.id, v.claim.title, catalogue.label(v.cells[0].verdict), catalogue.label(v.cells[1].verdict)] for v in views])


def compare(paths: list[Path], a: str, b: str) -> str:
    claims = catalogue.load()
    dirs = [p for p in paths if p.is_dir()]
    all_runs = runs.load_runs(dirs, pages.ROOT) if dirs and not (Path(a).is_file() and Path(b).is_file()) else []
    cols = runs.columns(all_runs)
    ca, cb = _column(a, cols), _column(b, cols)
    views = [model.ClaimView(c, [model.cell(c, ca), model.cell(c, cb)]) for c in claims.values()]
    differ = [v for v in views if v.cells[0].verdict != v.cells[1].verdict]
    flips = [v for v in differ if v.flips]  # decided in both, differently
    out = [f"# {ca.label} (A) against {cb.label} (B)", "", f"A: {ca.key}; B: {cb.key}.", "",
           f"## Verdict flips ({len(flips)})", ""]
    out.append(_verdicts(flips) if flips else "None: no claim decided in both reads differently.")
    others = [v for v in differ if not v.flips]
    if others:
        out += ["", f"## Other differences ({len(others)}: undecided or not measured on one side)", "",
                _verdicts(others)]
    rows = [r for v in views for r in cmp.pair(v.id, v.cells[0], v.cells[1], cmp.deciding_names(v.cells))]
    out += ["", "## Deciding figures (B / A: ratio of medians; Mann-Whitney on the saved samples)", ""]
    labels = {ca.key: "A", cb.key: "B"}
    out.append(pages.md_table(cmp.HEADERS, [r.cells(labels) for r in rows]) if rows else
               "No part was measured in both.")
    return "\n".join(out)
