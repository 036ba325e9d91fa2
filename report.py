#!/usr/bin/env python3
"""Turn pytest-benchmark runs of the experiment suite into published tables.

    python report.py                      # every run under results/, report into results/
    python report.py results/Linux-CPython-3.11-64bit/0003_*.json --out /tmp/report

Writes, atomically, into --out (default results/):
- REPORT.md     the verdict table for the whole catalogue, then a section per claim with its
                figures as tables whose axes are the benchmarks' params;
- verdicts.csv  one row per claim;
- figures.csv   one row per figure per benchmark per run (long format, for pandas);
- plots/        timing against each group's numeric param, where a group has one.
With --readme FILE, the compact verdict table also replaces the block between
``<!-- verdicts:begin -->`` and ``<!-- verdicts:end -->`` in FILE.

With several runs, each claim is reported from the newest run that measured it, and the
table says in how many runs the same verdict came out (a verdict that flips between reruns
shows here). Everything comes from the JSON's extra_info, written by harness.evidence.

Bad input (a missing path, an empty directory, truncated, binary or foreign JSON) stops the
report with one line naming the file and exit status 2; no output file is touched.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from harness import catalogue
from harness.evidence import combine

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
NOISY_CV = 0.10  # pyperf's rule: a spread (std dev / mean) of 10% or more deserves a warning
CONDITION_KEYS = ("implementation", "python", "gil_enabled", "cpus_available", "scale")


class InputError(Exception):
    """Bad input; the message names the file and says what is wrong with it."""


@dataclass
class Run:
    path: Path
    datetime: str
    commit: str
    benchmarks: list[dict]


@dataclass
class Part:
    """One benchmark that carries evidence: one part of a claim's verdict."""

    run: Run
    bench: dict

    @property
    def info(self) -> dict:
        return self.bench["extra_info"]

    @property
    def claim(self) -> str:
        return self.info["claim"]


@dataclass
class ClaimResult:
    claim: catalogue.Claim
    parts: list[Part] = field(default_factory=list)  # from the newest run that measured it
    verdict: str = ""
    runs_agreeing: int = 0
    runs_measuring: int = 0


# --- reading -------------------------------------------------------------------------------
def find_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.json") if p.is_file())
            if not found:
                raise InputError(f"{path}: no pytest-benchmark JSON files in this directory")
            files += found
        else:
            files.append(path)
    return files


def load_run(path: Path) -> Run:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (binary data), so not pytest-benchmark JSON") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (truncated?): {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list) or "machine_info" not in data:
        raise InputError(f"{path}: JSON, but not a pytest-benchmark run (no 'benchmarks' list or 'machine_info')")
    for bench in data["benchmarks"]:
        if not isinstance(bench, dict) or "stats" not in bench or "name" not in bench:
            raise InputError(f"{path}: a benchmark entry lacks 'name' or 'stats'")
        info = bench.get("extra_info") or {}
        if "claim" in info and not {"verdict", "checks", "figures", "conditions"} <= info.keys():
            raise InputError(f"{path}: {bench['name']} names claim {info['claim']} but lacks its evidence")
    commit = (data.get("commit_info") or {}).get("id") or "unversioned"
    return Run(path, str(data.get("datetime", "")), commit, data["benchmarks"])


def load_runs(paths: list[Path]) -> list[Run]:
    runs = [load_run(p) for p in find_files(paths)]
    return sorted(runs, key=lambda r: (r.datetime, str(r.path)))


# --- deciding what to show -----------------------------------------------------------------
def collect(runs: list[Run], claims: dict[str, catalogue.Claim]) -> dict[str, ClaimResult]:
    results = {cid: ClaimResult(claim) for cid, claim in claims.items()}
    verdicts_by_run: dict[str, list[str]] = {cid: [] for cid in claims}
    for run in runs:  # oldest first, so the newest run's parts win
        parts: dict[str, list[Part]] = {}
        for bench in run.benchmarks:
            info = bench.get("extra_info") or {}
            if info.get("claim") in results:
                parts.setdefault(info["claim"], []).append(Part(run, bench))
        for cid, claim_parts in parts.items():
            verdict = combine([p.info["verdict"] for p in claim_parts])
            verdicts_by_run[cid].append(verdict)
            results[cid].parts = claim_parts
            results[cid].verdict = verdict
    for cid, result in results.items():
        seen = verdicts_by_run[cid]
        result.runs_measuring = len(seen)
        result.runs_agreeing = sum(v == result.verdict for v in seen)
    return results


# --- formatting ----------------------------------------------------------------------------
def fmt_value(value, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value}{' ' + unit if unit else ''}"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if unit == "s":
        for scale, name in ((1, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            if abs(value) >= scale or name == "ns":
                return f"{value / scale:.3g} {name}"
    if unit in ("B", "bytes"):
        for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value:.4g} B"
    text = f"{value:.3g}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}" if unit else text


def fmt_figure(fig: dict) -> str:
    text = fmt_value(fig.get("value"), fig.get("unit", ""))
    if fig.get("n", 1) > 1 and fig.get("q1") != fig.get("q3"):
        unit = fig.get("unit", "")
        unit = unit if unit in ("s", "B", "bytes") else ""  # scaled units need theirs; others repeat
        text += f" [{fmt_value(fig['q1'], unit)} – {fmt_value(fig['q3'], unit)}]"
    return text


def fmt_check(check: dict) -> str:
    unit = check.get("unit", "")
    mark = "✓" if check["passed"] else "✗"
    return f"{check['name']} = {fmt_value(check['value'], unit)} ({check['op']} {fmt_value(check['threshold'], unit)} {mark})"


def md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def conditions_of(parts: list[Part]) -> str:
    """The conditions shared by all parts, then the axes that vary across them."""
    conds = [p.info["conditions"] for p in parts]
    first = conds[0]
    shared = [f"{k}={first[k]}" for k in CONDITION_KEYS if k in first and all(c.get(k) == first[k] for c in conds)]
    axes: dict[str, set] = {}
    for p in parts:
        for key, value in (p.bench.get("params") or {}).items():
            axes.setdefault(key, set()).add(str(value))
    shared += [f"{k} ∈ {{{', '.join(sorted(v))}}}" for k, v in axes.items()]
    return "; ".join(shared)


def deciding_figures(parts: list[Part], limit: int = 4) -> str:
    """The checks that decided the verdict: failed supports first, then caveats shown, then the rest."""
    checks = [c for p in parts for c in p.info["checks"]]
    rank = lambda c: (0 if c["role"] == "support" and not c["passed"] else 1 if c["role"] == "caveat" and c["passed"] else 2)
    seen, shown = set(), []
    for check in sorted(checks, key=rank):
        key = (check["name"], check["role"], check["op"])  # one line per kind of check, not per parameter
        if key in seen:
            continue
        seen.add(key)
        shown.append(fmt_check(check))
    more = len(checks) - len(shown[:limit])
    return "; ".join(shown[:limit]) + (f"; … {more} more checks below" if more > 0 else "")


def verdict_cell(result: ClaimResult) -> str:
    if result.verdict:
        text = result.verdict
        if result.verdict != result.claim.expected:
            text += f" (catalogue expects {result.claim.expected})"
        elif result.claim.predicted and result.claim.predicted != result.verdict:
            text += f" (predicted {result.claim.predicted})"
        return text
    if result.claim.expected == "not-testable":
        return "not-testable"
    return "no experiment yet"


def verdict_rows(results: dict[str, ClaimResult]) -> list[dict]:
    rows = []
    for cid, r in results.items():
        measured = bool(r.verdict)
        rows.append({
            "id": cid,
            "claim": r.claim.statement,
            "verdict": verdict_cell(r),
            "deciding figures": deciding_figures(r.parts) if measured else (r.claim.why_not_testable or "—"),
            "conditions": conditions_of(r.parts) if measured else "—",
            "runs agreeing": f"{r.runs_agreeing}/{r.runs_measuring}" if measured else "—",
        })
    return rows


def part_table(parts: list[Part]) -> str:
    """One row per benchmark: its params as columns, then its timing, figures and verdict."""
    param_keys: list[str] = []
    figure_keys: list[str] = []
    for p in parts:
        for k in p.bench.get("params") or {}:
            if k not in param_keys:
                param_keys.append(k)
        for k in p.info["figures"]:
            if k not in figure_keys:
                figure_keys.append(k)
    rows = []
    for p in parts:
        stats = p.bench["stats"]
        cv = stats["stddev"] / stats["mean"] if stats.get("mean") else 0.0
        timing = f"{fmt_value(stats['median'], 's')} ± {fmt_value(stats['iqr'] / 2, 's')} (n={stats['rounds']})"
        if cv >= NOISY_CV and stats["rounds"] > 1:
            timing += f" ⚠ cv {cv:.0%}"
        row = {"test": p.bench["name"].split("[")[0]}
        row.update({k: (p.bench.get("params") or {}).get(k, "") for k in param_keys})
        row["timed (median ± IQR/2)"] = timing
        row.update({k: fmt_figure(p.info["figures"][k]) if k in p.info["figures"] else "" for k in figure_keys})
        row["verdict"] = p.info["verdict"]
        rows.append(row)
    return tabulate([{k: md_cell(v) for k, v in r.items()} for r in rows], headers="keys", tablefmt="github")


def render(results: dict[str, ClaimResult], runs: list[Run], plots: dict[str, str] | None = None) -> str:
    measured = sum(1 for r in results.values() if r.verdict)
    out = [
        "# Claim verdicts",
        "",
        f"Built by report.py from {len(runs)} run(s): {', '.join(r.path.name for r in runs)}. "
        f"{measured} of {len(results)} claims measured. Each claim is reported from the newest run "
        "that measured it; 'runs agreeing' counts the runs that reached the same verdict.",
        "",
        tabulate([{k: md_cell(v) for k, v in row.items()} for row in verdict_rows(results)], headers="keys", tablefmt="github"),
        "",
        "Figures are medians with [first – third quartile]. ✓/✗: the check passed/failed. "
        f"⚠ marks timings whose spread (std dev / mean) is {NOISY_CV:.0%} or more.",
        "",
    ]
    for cid, r in results.items():
        c = r.claim
        out += [f"## {cid}: {c.statement}", "", f"*Notes' section:* {c.section}. *Expected:* {c.expected}. "
                f"*Verdict:* {verdict_cell(r)}.", ""]
        if c.caveat:
            out += [f"*Caveat:* {c.caveat}", ""]
        if not r.verdict:
            out += [c.why_not_testable or "No experiment measures this claim yet.", ""]
            continue
        run = r.parts[0].run
        out += [f"From `{run.path.name}` ({run.datetime}, commit {run.commit[:10]}); conditions: {conditions_of(r.parts)}.", ""]
        groups: dict[str, list[Part]] = {}
        for p in r.parts:
            groups.setdefault(p.bench.get("group") or p.bench["name"].split("[")[0], []).append(p)
        for group, parts in groups.items():
            out += [f"### {group}", "", part_table(parts), ""]
            if plots and group in plots:
                out += [f"![{md_cell(group)}]({plots[group]})", ""]
            checks = [(p.bench["name"], ch) for p in parts for ch in p.info["checks"]]
            out += ["| benchmark | role | check | why |", "|---|---|---|---|"]
            out += [f"| {md_cell(n)} | {ch['role']} | {md_cell(fmt_check(ch))} | {md_cell(ch.get('why', ''))} |" for n, ch in checks]
            notes = [f"- {md_cell(n)}" for p in parts for n in p.info.get("notes", [])]
            out += [""] + notes + ([""] if notes else [])
    return "\n".join(out) + "\n"


README_BEGIN, README_END = "<!-- verdicts:begin -->", "<!-- verdicts:end -->"


def compact_table(results: dict[str, ClaimResult]) -> str:
    """The verdict table without the long columns, for a README."""
    rows = [{"ID": r["id"], "claim": r["claim"], "verdict": r["verdict"], "deciding figures": r["deciding figures"]}
            for r in verdict_rows(results)]
    return tabulate([{k: md_cell(v) for k, v in row.items()} for row in rows], headers="keys", tablefmt="github")


def with_verdicts(readme_text: str, table: str, path: Path) -> str:
    begin, end = readme_text.find(README_BEGIN), readme_text.find(README_END)
    if begin < 0 or end < begin:
        raise InputError(f"{path}: no {README_BEGIN} ... {README_END} block to fill")
    return readme_text[: begin + len(README_BEGIN)] + "\n" + table + "\n" + readme_text[end:]


def figures_frame(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        for bench in run.benchmarks:
            info = bench.get("extra_info") or {}
            if "claim" not in info:
                continue
            for name, fig in info["figures"].items():
                rows.append({
                    "run": run.path.name, "datetime": run.datetime, "claim": info["claim"], "benchmark": bench["name"],
                    **{f"param_{k}": v for k, v in (bench.get("params") or {}).items()},
                    "figure": name, "value": fig.get("value"), "unit": fig.get("unit", ""),
                    "q1": fig.get("q1"), "q3": fig.get("q3"), "n": fig.get("n", 1), "verdict": info["verdict"],
                })
    return pd.DataFrame(rows).convert_dtypes()


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")[:60]


def plot_group(group: str, parts: list[Part]):
    """A figure of timing against the group's numeric param, one line per other param value.

    Returns None when the group has no numeric axis with three or more values to draw.
    """
    params = [p.bench.get("params") or {} for p in parts]
    numeric = [k for k in params[0] if all(isinstance(pp.get(k), (int, float)) and not isinstance(pp.get(k), bool)
                                           for pp in params)]
    numeric = [k for k in numeric if len({pp[k] for pp in params}) >= 3]
    if not numeric:
        return None
    x_key = numeric[0]
    series: dict[str, list[tuple[float, float, float, float]]] = {}
    for p, pp in zip(parts, params):
        label = ", ".join(f"{k}={v}" for k, v in pp.items() if k != x_key) or "median"
        st = p.bench["stats"]
        series.setdefault(label, []).append((pp[x_key], st["median"], st.get("q1", st["median"]), st.get("q3", st["median"])))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, points in sorted(series.items()):
        points.sort()
        xs, med, q1, q3 = zip(*points)
        ax.plot(xs, med, marker="o", label=label)
        ax.fill_between(xs, q1, q3, alpha=0.2)
    xs_all = [pp[x_key] for pp in params]
    if min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 50:
        ax.set_xscale("log")
    meds = [p.bench["stats"]["median"] for p in parts]
    if min(meds) > 0 and max(meds) / min(meds) >= 50:
        ax.set_yscale("log")
    ax.set_xlabel(x_key)
    ax.set_ylabel("timed seconds (median, IQR shaded)")
    ax.set_title(group, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- writing -------------------------------------------------------------------------------
def write_atomic(path: Path, text: str) -> None:
    """Write next to the target, then rename over it: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure_atomic(fig, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)


def build(paths: list[Path], out: Path, readme: Path | None = None) -> dict[str, ClaimResult]:
    claims = catalogue.load()
    runs = load_runs(paths)
    if not any("claim" in (b.get("extra_info") or {}) for r in runs for b in r.benchmarks):
        raise InputError(f"{', '.join(map(str, paths))}: no benchmark in these runs carries a claim's evidence")
    results = collect(runs, claims)
    figures_by_file = {}
    for r in results.values():
        groups: dict[str, list[Part]] = {}
        for p in r.parts:
            groups.setdefault(p.bench.get("group") or p.bench["name"].split("[")[0], []).append(p)
        for group, parts in groups.items():
            fig = plot_group(group, parts)
            if fig is not None:
                figures_by_file[group] = (f"plots/{r.claim.id}-{slug(group)}.png", fig)
    report = render(results, runs, {g: name for g, (name, _) in figures_by_file.items()})
    verdicts = pd.DataFrame(verdict_rows(results)).to_csv(index=False)
    figures = figures_frame(runs).to_csv(index=False)
    readme_text = None
    if readme is not None:
        try:
            readme_text = with_verdicts(readme.read_text(encoding="utf-8"), compact_table(results), readme)
        except (OSError, UnicodeDecodeError):
            raise InputError(f"{readme}: cannot read it as a text file") from None
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "REPORT.md", report)
    write_atomic(out / "verdicts.csv", verdicts)
    write_atomic(out / "figures.csv", figures)
    if readme_text is not None:
        write_atomic(readme, readme_text)
    for name, fig in figures_by_file.values():
        (out / name).parent.mkdir(exist_ok=True)
        save_figure_atomic(fig, out / name)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="run files or directories (default: results/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="where to write REPORT.md and the CSVs")
    parser.add_argument("--readme", type=Path, help="also put the verdict table into this file's verdicts block")
    args = parser.parse_args(argv)
    paths = args.paths or [DEFAULT_RESULTS]
    try:
        results = build(paths, args.out, args.readme)
    except (InputError, catalogue.CatalogueError) as exc:
        print(f"report.py: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"report.py: {exc.filename or args.out}: cannot write: {exc.strerror}", file=sys.stderr)
        return 2
    measured = sum(1 for r in results.values() if r.verdict)
    print(f"report.py: {measured}/{len(results)} claims measured; wrote {args.out / 'REPORT.md'}, verdicts.csv, figures.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
