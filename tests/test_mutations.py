"""Make a claim false in the measured world, without editing its experiment: the verdict must change.

Each case runs one claim's experiment in a pytest subprocess with a mutation plugin
(tests/mutations/) that patches one harness function or library setting, then reads the run's
JSON and asserts that no selected part reads what the catalogue expects of it. A check that
could not fail would read the same with the mutation as without.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import catalogue, environment

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = catalogue.load()
MUTATIONS = {  # plugin -> (claim, experiment file's test selection)
    "th1_threads_take_turns": ("TH1", "test_unsynchronised_read_modify_write_across_threads_loses_updates"),
    "io4_reader_polls": ("IO4", "test_cpu_is_free_while_a_thread_waits_on_slow_io and pipe"),
    "th4_work_releases_the_gil": ("TH4", "test_cpu_bound_threads_do_not_scale"),
    "pr1_children_are_threads": ("PR1", "test_child_process_writes_are_invisible_to_parent and spawn"),
    "co7_sleep_yields": ("CO7", "test_blocking_call_stalls_every_coroutine_until_moved_to_a_thread and asyncio-N10"),
}
TIMEOUT_S = 120


@pytest.mark.parametrize("plugin", sorted(MUTATIONS))
def test_a_claim_made_false_changes_its_verdict(plugin, tmp_path):
    claim_id, selection = MUTATIONS[plugin]
    claim = CLAIMS[claim_id]
    if claim_id in ("TH4",) and environment.cpus_available() < 2:
        pytest.skip("TH4's parallel part needs two CPUs")
    out = tmp_path / "run.json"
    cmd = [sys.executable, "-m", "pytest", claim.file, "-k", selection, "-p", f"tests.mutations.{plugin}",
           "-p", "no:cacheprovider", "-q", f"--benchmark-json={out}", f"--benchmark-storage={tmp_path / 'runs'}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.exists(), f"no run JSON (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    data = json.loads(out.read_text())
    parts = [b["extra_info"] for b in data["benchmarks"] if (b.get("extra_info") or {}).get("claim") == claim_id]
    parts += [{"part": m["part"], "verdict": catalogue.NOT_MEASURED, "checks": []}
              for m in data.get("not_measured", []) if m["claim"] == claim_id]
    assert parts, f"the selection ran nothing:\n{done.stdout[-3000:]}"
    failed = re.search(r"(\d+) failed", done.stdout)
    errors = re.search(r"(\d+) error", done.stdout)
    assert not errors, f"{plugin}: the experiment errored instead of deciding:\n{done.stdout[-3000:]}"
    assert done.stdout.count("measured verdict") >= (int(failed.group(1)) if failed else 0), \
        f"{plugin}: a test failed for another reason than its verdict:\n{done.stdout[-3000:]}"
    traits = environment.traits()
    for part in parts:
        caveats = any(c["role"] == "caveat" for c in part["checks"])
        expected = claim.expected_for_part(part["part"], traits, has_caveat_checks=caveats)
        assert part["verdict"] != expected, f"{plugin}: {part['part']} still reads {expected}:\n{done.stdout[-3000:]}"
