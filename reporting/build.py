"""From runs to every published file, in memory, then written in one go (see publish.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import catalogue
from reporting import model, pages, plots, publish, runs, scaling, tables, units
from reporting.schema import InputError

README_BEGIN, README_END = "<!-- verdicts:begin -->", "<!-- verdicts:end -->"
UNITS_BEGIN, UNITS_END = "<!-- units:begin -->", "<!-- units:end -->"
PLOT_FILE = re.compile(r"^([A-Z]+[0-9]+-\d+-[a-z0-9-]+|scaling-env-[a-z0-9-]+)\.png$")  # claims' plots, scaling curves
UNIT_PAGE = re.compile(r"^env-[a-z0-9-]+\.md$")  # results/units/: one page per environment
OLD_PLOT = re.compile(r"^[A-Z]+[0-9]+-.*\.png$")  # plots/ of the report before the site existed
LEGEND = ("Verdicts: holds, holds-with-caveat, refuted (decided by measured support checks); undecided (an "
          "interval straddled its threshold); not measured here (skipped, reasons on the page); not-testable. "
          "⚠ / (expected …): differs from the catalogue's expectation for that environment. "
          "Bold: the verdict flips between environments.")


@dataclass
class Report:
    views: list[model.ClaimView]
    cols: list[runs.Column]
    runs: list[runs.Run]
    files: dict[Path, bytes | str] = field(default_factory=dict)
    readme: tuple[Path, str] | None = None
    scalings: list[scaling.Scaling] = field(default_factory=list)  # from the full-scale columns


def select(all_runs: list[runs.Run], exclude_stale: bool) -> list[runs.Run]:
    stale = [r for r in all_runs if r.stale]
    if exclude_stale and stale:
        for r in stale:
            runs.warn(f"{r.path}: left out as stale: {r.stale}")
        current = [r for r in all_runs if not r.stale]
        if not current:
            raise InputError(f"every run is stale ({len(stale)} left out); no current run remains to publish")
        return current
    for r in stale:
        runs.warn(f"{r.path}: stale: {r.stale} (marked in the report)")
    return all_runs


def prepare(paths: list[Path], out: Path, readme: Path | None = None, exclude_stale: bool = False,
            repo: Path | None = pages.ROOT, claims: dict | None = None) -> Report:
    claims = claims if claims is not None else catalogue.load()
    all_runs = runs.load_runs(paths, repo)
    if not all_runs:
        raise InputError(f"{', '.join(map(str, paths))}: no run in the current format (with an environment key)")
    runs.check_catalogued(all_runs, claims, ", ".join(map(str, paths)))
    chosen = select(all_runs, exclude_stale)
    runs.check_catalogued(chosen, claims, ", ".join(map(str, paths)))
    every = runs.columns(chosen)
    # The verdicts read the quick columns, and a full-scale column of its own beside them only where its runs
    # selected more than the scaling claims (a whole `make reproduce SCALE=full`); every full-scale column feeds
    # the scaling page. Either way a full-scale run never replaces a quick verdict.
    quick = [c for c in every if c.scale == "quick"]
    whole = [c for c in every if c.scale == "full" and any(r.claims() - set(scaling.CLAIMS) for r in c.runs)]
    cols = (quick + whole) or every
    views = model.views(claims, cols)
    report = Report(views, cols, chosen, scalings=scaling.all_scalings(claims, [c for c in every if c.scale == "full"]))
    drawn, plot_notes = plots.draw_all(views)
    render(report, out, drawn, plot_notes)
    if readme is not None:
        report.readme = (readme, readme_text(readme, views, cols, out))
    return report


def render(report: Report, out: Path, drawn: dict, plot_notes: dict) -> None:
    views, cols = report.views, report.cols
    several = len(cols) > 1
    site = out / "site"
    md_env, html_env = pages.environment("md"), pages.environment("html")
    envs = pages.env_rows(cols)
    for e, col in zip(envs, cols):
        e["heading"] = runs.heading(col, cols)
    stale_note = stale_summary(report.runs)
    toc: dict[str, list] = {}
    for v in views:
        toc.setdefault(v.claim.section, []).append(v)
    md_links = pages.Links("claims/", "md", "site/", pages.repo_root_from(out))
    common = {"run_count": len(report.runs), "envs": envs, "stale_note": stale_note, "toc": list(toc.items()),
              "legend": LEGEND, "views": views}
    env_table = [[e["heading"], e["origin"], e["cpu"], e["cores"], e["kernel"], e["gil"], e["commits"], e["dates"],
                  e["runs"] + (" (stale)" if e["stale"] else "")] for e in envs]
    matrix, form = pages.fit_matrix(views, cols, md_links, readme=False)
    files = report.files
    failability = [[f"[{v.id}](claims/{v.id}.md)", model.failability(v)] for v in views
                   if v.claim.expected != "not-testable"]
    files[out / "REPORT.md"] = md_env.get_template("index.md.j2").render(
        common, env_table=env_table, matrix=matrix, short=form.short, titles=form.title, root=md_links.root,
        failability=failability, unit_pages=[(runs.heading(col, cols), f"units/{col.anchor}.md") for col in cols])
    files[site / "index.html"] = html_env.get_template("index.html.j2").render(
        common, root=pages.repo_root_from(site))
    for v in views:
        ctx = pages.claim_context(v, drawn.get(v.id, []), plot_notes.get(v.id, []), several)
        ctx_md = dict(ctx, file_link=pages.file_link(out / "claims", v.claim.file),
                      plot_link=lambda d: f"../site/{d.file}",
                      scaling_link="../scaling.md" if v.id in scaling.CLAIMS else "",
                      verdict_rows=[[c["label"], c["verdict"], c["expected"], c["commit"] or "—", c["date"] or "—"]
                                    for c in ctx["cells"]])
        files[out / "claims" / f"{v.id}.md"] = md_env.get_template("claim.md.j2").render(ctx_md)
        files[site / "claims" / f"{v.id}.html"] = html_env.get_template("claim.html.j2").render(
            ctx, file_link=pages.file_link(site / "claims", v.claim.file))
        for d in drawn.get(v.id, []):
            files[site / d.file] = d.png
    files[out / "verdicts.csv"] = tables.verdicts(views).to_csv(index=False)
    files[out / "figures.csv"] = tables.figures(report.runs, cols, {v.id for v in views}).to_csv(index=False)
    files[out / "comparison.csv"] = tables.comparison(views).to_csv(index=False)
    files[out / "units.csv"] = units.csv(views, cols).to_csv(index=False)
    render_scaling(report, out, md_env)
    unit_pages = [{"label": runs.heading(col, cols), "file": f"{col.anchor}.md", "col": col} for col in cols]
    for page in unit_pages:
        body = units.page_tables(units.table(views, page["col"]), pages.md_table,
                                 lambda cid, a: f"../claims/{cid}.md#{a}")
        files[out / "units" / page["file"]] = md_env.get_template("units.md.j2").render(
            label=page["label"], table=body, others=[p for p in unit_pages if p is not page])


def render_scaling(report: Report, out: Path, md_env) -> None:
    """scaling.md (a section per full-scale column: plot, table, part verdicts), its plots and scaling.csv."""
    entries = []
    for s in report.scalings:
        png = scaling.draw(s)
        if png is not None:
            report.files[out / "site" / s.plot_file] = png
        entries.append({"label": s.label, "png": png is not None, "plot_file": s.plot_file,
                        "table": scaling.table(s, pages.md_table), "verdicts": scaling.verdicts(s)})
    have = {s.column.key for s in report.scalings}
    missing = [runs.heading(c, report.cols) for c in report.cols
               if c.scale == "quick" and runs.full_scale_key(c.key) not in have]
    report.files[out / "scaling.md"] = md_env.get_template("scaling.md.j2").render(
        scalings=entries, missing=missing, claims=scaling.CLAIMS)
    report.files[out / "scaling.csv"] = scaling.csv(report.scalings).to_csv(index=False)


def stale_summary(all_runs: list[runs.Run]) -> str:
    """'3 of 15 runs: experiments/ or harness/ changed since their commit (0001_….json, …)'."""
    stale = [r for r in all_runs if r.stale]
    if not stale:
        return ""
    names = ", ".join(r.path.name.split("_")[0] + (f" ({r.origin})" if r.origin else "") for r in stale)
    return (f"{len(stale)} of {len(all_runs)} runs were made before the last change to "
            f"{' or '.join(f'{w}/' for w in runs.WATCHED)} (or at a commit unknown here): {names}. "
            "make publish leaves them out.")


def readme_text(readme: Path, views, cols, out: Path) -> str:
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError(f"{readme}: cannot read it as a text file") from None
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise InputError(f"{readme}: no {README_BEGIN} ... {README_END} block to fill")
    base = readme.resolve().parent
    links = pages.Links(pages.rel(out / "claims", base), "md", "", pages.repo_root_from(base))
    try:
        block = pages.readme_block(views, cols, links, pages.rel(out, base) + "REPORT.md")
    except ValueError as exc:
        raise InputError(f"{readme}: {exc}") from None
    text = text[: begin + len(README_BEGIN)] + "\n" + block.strip("\n") + "\n" + text[end:]
    begin, end = text.find(UNITS_BEGIN), text.find(UNITS_END)
    if begin < 0 and end < 0:  # the comparison block is optional: a README may carry the verdicts alone
        return text
    if begin < 0 or end < begin:
        raise InputError(f"{readme}: a {UNITS_BEGIN} ... {UNITS_END} block is opened or closed, not both")
    block = units_block(views, cols, links, pages.rel(out, base))
    return text[: begin + len(UNITS_BEGIN)] + "\n" + block.strip("\n") + "\n" + text[end:]


def units_block(views, cols, links: pages.Links, out_link: str) -> str:
    """The README's comparison: the first environment's units table, values only, each linked to its evidence."""
    # the environment whose runs fill the most cells (the first of those): interpreters need 3.12+
    column = max(cols, key=lambda c: sum(cell.source is not None for _, cells in units.table(views, c)
                                         for cell in cells))
    table = units.readme_table(units.table(views, column), pages.md_table, links.claim)
    others = ", ".join(f"[{pages.compact_heading(c, cols)}]({out_link}units/{c.anchor}.md)" for c in cols)
    return (f"On {runs.heading(column, cols)}; each cell links to the claim whose run measured it.\n"
            f"With intervals and the reason for each n/m, per environment: {others}.\n\n{table}\n")


def write(report: Report, out: Path) -> list[Path]:
    owned = {out / "site" / "plots": PLOT_FILE, out / "plots": OLD_PLOT, out / "claims": publish.PAGE,
             out / "site" / "claims": publish.PAGE, out / "units": UNIT_PAGE}
    removed = publish.write_all(report.files, owned)
    if report.readme is not None:
        publish.write_keeping_mode(*report.readme)
    return removed
