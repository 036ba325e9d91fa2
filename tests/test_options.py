"""The command line a user types: --scale and -k <claim ID> behave as the README says."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pytest_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_bad_scale_is_a_usage_error():
    proc = pytest_run("experiments", "--scale=huge", "--collect-only", "-q")
    assert proc.returncode == 4  # pytest's usage-error status
    assert "--scale" in proc.stderr and "invalid choice: 'huge'" in proc.stderr


def test_k_with_a_claim_id_selects_exactly_that_claims_experiments():
    proc = pytest_run("experiments", "--collect-only", "-q", "-k", "TH4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    selected = {line.split("[")[0] for line in proc.stdout.splitlines() if "::" in line}
    expected = set()
    for path in sorted((ROOT / "experiments").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "claim"
                and d.args and getattr(d.args[0], "value", None) == "TH4"
                for d in node.decorator_list
            ):
                expected.add(f"experiments/{path.name}::{node.name}")
    assert expected and selected == expected
