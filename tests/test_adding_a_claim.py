"""The README's "Adding a claim", followed as a new user would, in a copy of the project.

The catalogue entry and the experiment are taken from the README itself, so the README's
example cannot drift from what works: the copy gets the new claim, its experiment runs and
settles a verdict, and the project's own catalogue tests stay green with it.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".venv", ".git", "results", "build", ".interpreters", "__pycache__", ".pytest_cache",
                              ".nox", "*.pyc")


def readme_blocks() -> dict[str, str]:
    """The toml and python code blocks of the README's "Adding a claim" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Adding a claim", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"```(toml|python)\n(.*?)```", section, flags=re.S))


def test_adding_a_claim_as_the_readme_says_keeps_the_tests_green(tmp_path):
    blocks = readme_blocks()
    assert {"toml", "python"} <= blocks.keys(), "the README's 'Adding a claim' lost its toml or python example"
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=SKIP)
    with (project / "catalogue.toml").open("a", encoding="utf-8") as f:
        f.write("\n" + blocks["toml"])
    target = re.search(r'^file = "(.*)"$', blocks["toml"], flags=re.M).group(1)
    (project / target).write_text(blocks["python"], encoding="utf-8")
    claim_id = re.search(r'^id = "(.*)"$', blocks["toml"], flags=re.M).group(1)

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", target, "tests/test_catalogue.py", "-p", "no:cacheprovider", "-q",
         f"--benchmark-storage={tmp_path / 'runs'}", "-k", f"{claim_id} or catalogue"],
        cwd=project, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"{claim_id} " in proc.stdout.split("claim verdicts", 1)[-1], proc.stdout[-2000:]
    runs = list((tmp_path / "runs").rglob("*.json"))
    assert len(runs) == 1
    recorded = [b["extra_info"] for b in json.loads(runs[0].read_text())["benchmarks"]]
    assert {r["claim"] for r in recorded} == {claim_id}
    assert all(r["verdict"] in ("holds", "undecided") for r in recorded)
