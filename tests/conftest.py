"""Helpers for the project's own tests: synthetic pytest-benchmark runs for report.py."""
from __future__ import annotations

import json

import pytest


def bench(claim="TH4", name="test_x[2]", verdict="holds", params=None, group="g", checks=None, figures=None):
    """One benchmark entry shaped as the suite writes it."""
    checks = checks if checks is not None else [
        {"name": "speedup", "value": 1.0, "op": "<=", "threshold": 1.25, "unit": "x",
         "role": "support", "why": "because", "passed": verdict != "refuted"}
    ]
    return {
        "group": group,
        "name": name,
        "fullname": f"experiments/test_x.py::{name}",
        "params": params if params is not None else {"workers": 2},
        "param": "2",
        "extra_info": {
            "claim": claim,
            "part": name,
            "verdict": verdict,
            "expected": verdict,
            "checks": checks,
            "figures": figures if figures is not None else {"speedup": {"value": 1.0, "unit": "x", "q1": 0.9, "q3": 1.1, "n": 5}},
            "notes": ["a note"],
            "conditions": {"python": "3.11.7", "implementation": "CPython", "gil_enabled": True,
                           "cpus_available": 2, "scale": "quick"},
            "settings": {"ROUNDS": 5},
            "not_testable_reason": "",
        },
        "stats": {"min": 0.1, "max": 0.2, "mean": 0.15, "stddev": 0.01, "rounds": 5, "median": 0.15,
                  "iqr": 0.02, "q1": 0.14, "q3": 0.16, "iterations": 1, "ops": 6.6, "total": 0.75},
    }


def run_json(benchmarks, when="2026-01-01T00:00:00"):
    return {"machine_info": {"node": "test"}, "commit_info": {"id": "abc123"}, "benchmarks": benchmarks,
            "datetime": when, "version": "5.3.1"}


@pytest.fixture
def write_run(tmp_path):
    """write_run(name, benchmarks, when) -> path of a run file under tmp_path/runs."""
    def write(name, benchmarks, when="2026-01-01T00:00:00"):
        path = tmp_path / "runs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run_json(benchmarks, when)))
        return path
    return write
