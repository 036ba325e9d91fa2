"""The CSVs: verdicts.csv (claim × environment), figures.csv (long, for pandas), comparison.csv."""
from __future__ import annotations

import math

import pandas as pd

from harness import catalogue
from reporting import compare, placeholders
from reporting.model import ClaimView
from reporting.runs import Column, Run

ENV_COLUMNS = ("implementation", "python", "free_threaded", "gil", "jit", "cpu_model", "cores", "cpus_available",
               "kernel", "machine", "system")


def _env(col_key: str, origin: str, env: dict) -> dict:
    return {"environment": col_key, "origin": origin, **{k: env[k] for k in ENV_COLUMNS}}


def verdicts(views: list[ClaimView]) -> pd.DataFrame:
    rows = []
    for v in views:
        for c in v.cells:
            rows.append({
                "id": v.id, "title": v.claim.title, **_env(c.column.key, c.column.origin, c.column.env),
                "verdict": c.verdict, "verdict_label": catalogue.label(c.verdict), "expected": c.expected,
                "differs_from_expected": c.surprising, "flips_across_environments": v.flips,
                "parts_measured": len(c.parts), "parts_not_measured": len(c.missing),
                "not_measured_reasons": "; ".join(f"{m['part']}: {m['reason']}" for m in c.missing)
                or ("; ".join(c.reasons) if c.verdict == catalogue.NOT_MEASURED else "")
                or (v.claim.why_not_testable if c.verdict == "not-testable" else ""),
                "run": c.run.path.name if c.run else "", "commit": c.run.commit if c.run else "",
                "datetime": c.run.datetime if c.run else "", "stale": c.run.stale if c.run else "",
                "file": v.claim.file, "control": placeholders.render(v.claim.control, v),
            })
    return pd.DataFrame(rows)


def _value(v) -> tuple[float, str]:
    if isinstance(v, bool):
        return float(v), ""
    if isinstance(v, (int, float)):
        return (float(v) if math.isfinite(v) else math.nan), ""
    return math.nan, str(v)


def figures(runs: list[Run], cols: list[Column], claims: dict) -> pd.DataFrame:
    """One row per figure per benchmark per run: numeric `value`, text values in `text`."""
    rows = []
    params = sorted({k for r in runs for b in r.benchmarks for k in (b.get("params") or {})})
    for col in cols:
        for run in col.runs:
            for bench in run.benchmarks:
                info = bench.get("extra_info") or {}
                if info.get("claim") not in claims:
                    continue
                p = bench.get("params") or {}
                for name, fig in info["figures"].items():
                    value, text = _value(fig.get("value"))
                    interval = fig.get("interval") or [None, None]
                    rows.append({
                        **_env(col.key, col.origin, col.env), "run": run.path.name, "commit": run.commit,
                        "datetime": run.datetime, "stale": run.stale, "claim": info["claim"],
                        "part": info["part"], "benchmark": bench["name"],
                        **{f"param_{k}": p.get(k) for k in params},
                        "figure": name, "value": value, "text": text, "unit": fig.get("unit", ""),
                        "q1": fig.get("q1"), "q3": fig.get("q3"), "min": fig.get("min"), "max": fig.get("max"),
                        "n": fig.get("n", 1), "interval_low": interval[0], "interval_high": interval[1],
                        "method": fig.get("method", ""), "verdict": info["verdict"],
                    })
    frame = pd.DataFrame(rows)
    if not frame.empty:
        for col in ("value", "q1", "q3", "min", "max", "interval_low", "interval_high"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def comparison(views: list[ClaimView]) -> pd.DataFrame:
    rows = [vars(r) for v in views for r in compare.across(v)]
    return pd.DataFrame(rows, columns=list(compare.Row.__dataclass_fields__))
