"""Helpers for the project's own tests: synthetic runs in the suite's current JSON format.

Each helper builds one piece from harness/record.py's dataclasses, as harness/evidence.py and
harness/plugin.py write it, so report.py's tests never need a measurement.
"""
from __future__ import annotations

import json

import pytest

from harness import environment, record

ENV = record.to_json(record.Environment(
    implementation="CPython", python="3.13.5", free_threaded=False, gil="on", jit="absent", cpu_model="Test CPU 9000",
    cores=2, cpus_available=2, kernel="6.1.0-test", machine="x86_64", system="Linux"))
FREE_THREADED = {**ENV, "free_threaded": True, "gil": "off"}


def env(**changes) -> dict:
    return {**ENV, **changes}


def check(name="thread_cores", value=1.01, op="<=", threshold=1.3, unit="cores", role="support", passed=True,
          interval=None, n=None, why="GIL-bound threads keep one core busy", opposite=None):
    return record.to_json(record.Check(name, value, op, threshold, unit, role, why, passed, interval, n,
                                       opposite=opposite))


def figure(value=1.01, unit="cores", samples=None, **extra):
    if samples is not None:
        extra.update(samples=samples, n=len(samples), q1=min(samples), q3=max(samples))
    return record.to_json(record.Figure(value=value, unit=unit, **extra))


def bench(claim="TH4", name="test_cpu_bound_threads_do_not_scale[2-workers]", verdict="holds", params=None,
          checks=None, figures=None, notes=("a note",), measured_support=None, group=None):
    """One benchmark entry, shaped as the suite writes it."""
    checks = checks if checks is not None else [check(passed=verdict != "refuted")]
    figures = figures if figures is not None else {c["name"]: figure(c["value"], c["unit"]) for c in checks}
    support = measured_support if measured_support is not None else \
        any(c["role"] == "support" and c["passed"] is not None for c in checks)
    return {
        "group": group, "name": name, "fullname": f"experiments/test_x.py::{name}",
        "params": params if params is not None else {"workers": 2}, "param": "2",
        "extra_info": record.to_json(record.Part(
            claim=claim, part=name, verdict=verdict, expected="holds-with-caveat", measured_support=support,
            checks=checks, figures=figures, notes=list(notes),
            conditions={"python": "3.13.5", "gil_enabled": True, "cpus_available": 2, "scale": "quick"},
            settings={"ROUNDS": 7}, not_measured_reason="")),
        "stats": {"min": 0.1, "max": 0.2, "mean": 0.15, "stddev": 0.01, "rounds": 7, "median": 0.15,
                  "iqr": 0.02, "q1": 0.14, "q3": 0.16, "iterations": 1, "ops": 6.6, "total": 1.05},
    }


def skipped(claim="PR4", part="test_processes_run_in_parallel[2-workers]", reason="needs 2 free CPUs; 0.4 free"):
    return record.to_json(record.NotMeasured(claim=claim, part=part, nodeid=f"experiments/test_x.py::{part}",
                                             reason=reason))


def run_json(benchmarks, environment_=None, not_measured=(), selected=None, when="2026-01-01T00:00:00",
             commit="abc123", scale="quick"):
    claims = {b["extra_info"]["claim"] for b in benchmarks} | {m["claim"] for m in not_measured}
    return {"suite_format": record.SUITE_FORMAT, "scale": scale, "machine_info": {"node": "test"},
            "commit_info": {"id": commit, "dirty": False},
            "benchmarks": benchmarks, "datetime": when, "version": "5.3.1",
            "environment": dict(environment_ or ENV), "not_measured": list(not_measured),
            "claims_selected": sorted(claims) if selected is None else selected}


@pytest.fixture
def write_run(tmp_path):
    """write_run(name, benchmarks, env=..., root="runs", ...) -> the file, stored as the suite stores it."""
    def write(name, benchmarks, env=None, root="runs", raw=None, **kwargs):
        env = env or ENV
        path = tmp_path / root / environment.slug(env) / "Linux-CPython-64bit" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(raw if raw is not None else json.dumps(run_json(benchmarks, env, **kwargs)))
        return path
    return write
