"""`make stability`: does a verdict depend on which run (or which machine load) produced it?

Reruns the quick suite `--runs` times, each with `--load` busy processes beside it, into
build/stability/run-NNN-loadK/ (never results/: these runs are about the suite, not the claims).
Runs accumulate across invocations, so 5 idle runs and then 3 loaded ones make one table;
`rm -rf build/stability` starts a new series. Then writes results/stability.md and .csv: per
claim, its verdict in each run, the flips (changes between two decided verdicts, in run order;
an undecided or not-measured run in between neither makes nor breaks one), and how many runs
left it undecided or not measured.

A run's claim verdicts are read back the way the run itself decided them (harness/plugin.py's
claim_states): harness.record.claim_verdict over the parts' records and the run's "not_measured"
list, each record validated by harness.record.parse first.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from harness import catalogue, environment, record  # noqa: E402

OUT = ROOT / "build" / "stability"
MD = ROOT / "results" / "stability.md"
CSV = ROOT / "results" / "stability.csv"
SPINNER = ["sh", "-c", "while :; do :; done"]  # one busy CPU, nothing else
NO_RESULT = "no result"  # the claim was selected but the run recorded nothing for it (an error)
ABSENT = ""  # the claim was not selected in that run


# --- reading runs ---------------------------------------------------------------------------
def run_states(run_json: dict, where: str = "run") -> dict[str, str]:
    """Claim ID -> verdict state of one pytest-benchmark JSON, as the run decided it."""
    parts: dict[str, list[dict]] = {}
    missing: dict[str, list[dict]] = {}
    for i, bench in enumerate(run_json.get("benchmarks", [])):
        info = bench.get("extra_info") or {}
        if "claim" in info:
            parts.setdefault(info["claim"], []).append(record.parse(record.Part, info, where, f"benchmarks[{i}]"))
    for i, skip in enumerate(run_json.get("not_measured", [])):
        missing.setdefault(skip["claim"], []).append(record.parse(record.NotMeasured, skip, where,
                                                                  f"not_measured[{i}]"))
    selected = run_json.get("claims_selected") or list({**parts, **missing})
    return {cid: record.claim_verdict(parts.get(cid, []), missing.get(cid, []))
            if cid in parts or cid in missing else NO_RESULT for cid in selected}


def part_counts(run_json: dict) -> dict[str, int]:
    """A run's parts (settled tests and not-measured ones), and how many were undecided or not measured."""
    verdicts = [(b.get("extra_info") or {}).get("verdict") for b in run_json.get("benchmarks", [])]
    verdicts = [v for v in verdicts if v is not None]
    skipped = len(run_json.get("not_measured", []))
    return {"parts": len(verdicts) + skipped, "undecided": verdicts.count(catalogue.UNDECIDED),
            "not_measured": skipped + verdicts.count(catalogue.NOT_MEASURED)}


def read_run(run_dir: Path) -> dict:
    """One run folder: its metadata (run.json) and its claims' states (from every JSON it holds)."""
    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    states: dict[str, str] = {}
    counts = {"parts": 0, "undecided": 0, "not_measured": 0}
    env = None
    # pytest-benchmark nests them: <run>/<environment slug>/<machine id>/0001_*.json
    for path in sorted(p for p in run_dir.rglob("*.json") if p.parent != run_dir):
        data = json.loads(path.read_text())
        try:
            states.update(run_states(data, str(path)))
        except record.RecordError as exc:
            raise SystemExit(f"stability: {exc}") from None
        for key, value in part_counts(data).items():
            counts[key] += value
        env = data.get("environment") or env
    return {"name": run_dir.name, "meta": meta, "states": states, "parts": counts,
            "environment": environment.label(env) if env else "unknown"}


def read_runs(out: Path) -> list[dict]:
    return [read_run(d) for d in sorted(out.glob("run-*")) if d.is_dir()]


# --- summarizing ----------------------------------------------------------------------------
def flips(verdicts: list[str]) -> int:
    """Changes between consecutive decided verdicts; undecided and not-measured runs are skipped over."""
    decided = [v for v in verdicts if v in catalogue.DECIDED]
    return sum(a != b for a, b in zip(decided, decided[1:]))


def summarize(runs: list[dict]) -> list[dict]:
    """One row per claim seen in any run, in catalogue order."""
    seen = {cid for run in runs for cid in run["states"]}
    order = [cid for cid in catalogue.load() if cid in seen] + sorted(seen - set(catalogue.load()))
    rows = []
    for cid in order:
        verdicts = [run["states"].get(cid, ABSENT) for run in runs]
        rows.append({
            "claim": cid, "verdicts": verdicts, "flips": flips(verdicts),
            "undecided": verdicts.count(catalogue.UNDECIDED),
            "not_measured": verdicts.count(catalogue.NOT_MEASURED),
            "no_result": verdicts.count(NO_RESULT),
        })
    return rows


def to_csv(runs: list[dict], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["claim", *[run["name"] for run in runs], "flips", "undecided", "not_measured", "no_result"])
    for row in rows:
        writer.writerow([row["claim"], *row["verdicts"], row["flips"], row["undecided"], row["not_measured"],
                         row["no_result"]])
    return buf.getvalue()


def to_markdown(runs: list[dict], rows: list[dict]) -> str:
    total = sum(row["flips"] for row in rows)
    loads = sorted({run["meta"].get("load", "?") for run in runs}, key=str)
    lines = [
        "# Stability of the verdicts",
        "",
        f"{len(runs)} quick runs of the suite (`make stability`), busy processes beside them: "
        f"{', '.join(map(str, loads))}. **{total} flip{'s' if total != 1 else ''}** "
        "(a flip is a change between two decided verdicts of one claim, in run order).",
        "",
        "Parts are the settled tests (one per parametrization) and the not-measured ones; an undecided part",
        "had an interval straddling its threshold when its sampling bound ran out.",
        "",
        "| run | load | environment | started | seconds | pytest exit | parts | undecided parts | not measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        meta, parts = run["meta"], run.get("parts") or {"parts": 0, "undecided": 0, "not_measured": 0}
        share = f" ({parts['undecided'] / parts['parts']:.0%})" if parts["parts"] else ""
        lines.append(f"| {i} ({run['name']}) | {meta.get('load', '?')} | {run['environment']} | "
                     f"{meta.get('started', '?')} | {meta.get('seconds', '?')} | {meta.get('exit_code', '?')} | "
                     f"{parts['parts']} | {parts['undecided']}{share} | {parts['not_measured']} |")
    lines += ["", "| claim | " + " | ".join(str(i) for i in range(1, len(runs) + 1))
              + " | flips | undecided | not measured |",
              "|---|" + "---|" * len(runs) + "---|---|---|"]
    for row in rows:
        cells = [catalogue.label(v) if v else "–" for v in row["verdicts"]]
        flip = f"**{row['flips']}**" if row["flips"] else "0"
        lines.append(f"| {row['claim']} | " + " | ".join(cells) + f" | {flip} | {row['undecided']} | "
                     f"{row['not_measured']} |")
    if any(row["no_result"] for row in rows):
        lines += ["", f"\"{NO_RESULT}\": the claim was selected but its run recorded nothing (an error)."]
    return "\n".join(lines) + "\n"


def write_tables(out: Path, md: Path, csv_path: Path) -> int:
    runs = read_runs(out)
    if not runs:
        sys.exit(f"no runs in {out}")
    rows = summarize(runs)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(to_markdown(runs, rows))
    csv_path.write_text(to_csv(runs, rows))
    total = sum(row["flips"] for row in rows)
    print(f"stability: {len(runs)} runs, {len(rows)} claims, {total} flips -> {md}, {csv_path}")
    return total


# --- running --------------------------------------------------------------------------------
def start_load(k: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(SPINNER, start_new_session=True) for _ in range(k)]


def stop_load(spinners: list[subprocess.Popen]) -> None:
    for proc in spinners:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def next_run_dir(out: Path, load: int) -> Path:
    taken = [int(d.name.split("-")[1]) for d in out.glob("run-*") if d.name.split("-")[1].isdigit()]
    return out / f"run-{max(taken, default=0) + 1:03d}-load{load}"


def run_once(out: Path, load: int, pytest_args: list[str]) -> int:
    run_dir = next_run_dir(out, load)
    run_dir.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pytest", "experiments", f"--benchmark-storage={run_dir}",
           "-p", "no:cacheprovider", *pytest_args]
    print(f"stability: {run_dir.name}: {load} busy process(es) beside `{' '.join(cmd[2:])}`", flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    spinners = start_load(load)
    try:
        code = subprocess.run(cmd, cwd=ROOT).returncode
    finally:
        stop_load(spinners)
    meta = {"load": load, "exit_code": code, "seconds": round(time.monotonic() - t0), "started": started,
            "pytest_args": pytest_args}
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--load", type=int, default=0, help="busy processes beside each run")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--md", type=Path, default=MD)
    parser.add_argument("--csv", type=Path, default=CSV)
    parser.add_argument("--summarize", action="store_true", help="only rebuild the tables from --out")
    parser.add_argument("pytest_args", nargs="*", help="after --, passed to pytest (e.g. -- -k CO1)")
    args = parser.parse_args(argv)
    # A stop from outside (SIGTERM, SIGHUP: a killed make, a closed terminal) unwinds through
    # run_once's finally, so the busy processes of a loaded run never outlive this one.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    failed = 0
    if not args.summarize:
        for _ in range(args.runs):
            failed += run_once(args.out, args.load, args.pytest_args) not in (0, 5)
    flipped = write_tables(args.out, args.md, args.csv)
    if failed:
        print(f"stability: {failed} run(s) had failing tests; see the table's pytest exit column")
    return 1 if flipped or failed else 0


if __name__ == "__main__":
    sys.exit(main())
