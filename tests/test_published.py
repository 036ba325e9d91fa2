"""What is published agrees with itself: the README's links resolve, and every declared plot finds its figures.

Plots are declared by figure name (reporting/plots.py) while the experiments name the figures;
a rename on one side would silently drop a plot from the claim's page ("left out"), so the
declarations are checked against the committed reference runs.
"""
from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from reporting.plots import PLOTS
from reporting.runs import full_scale_key

ROOT = Path(__file__).resolve().parent.parent
RUNS = sorted((ROOT / "results").glob("*/*/*.json"))


def figures_by_claim() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in RUNS:
        for bench in json.loads(path.read_text())["benchmarks"]:
            info = bench.get("extra_info") or {}
            if "claim" in info:
                found.setdefault(info["claim"], set()).update(info.get("figures", {}))
    return found


@pytest.mark.skipif(not RUNS, reason="no reference runs under results/ to check the plot declarations against")
@pytest.mark.parametrize("claim_id", sorted(PLOTS))
def test_every_declared_plot_finds_its_figures_in_the_reference_runs(claim_id):
    figures = figures_by_claim().get(claim_id)
    if figures is None:
        pytest.skip(f"the reference runs do not measure {claim_id}")
    for plot in PLOTS[claim_id]:
        matched = [name for name in figures if any(fnmatch.fnmatchcase(name, p) for p in plot.y)]
        assert matched, f"{claim_id} plot {plot.title!r} declares {plot.y}; the runs record {sorted(figures)}"


@pytest.mark.parametrize("name", ["verdicts", "units"])
def test_the_readme_blocks_link_only_to_files_that_exist_and_stay_small(name):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(f"<!-- {name}:begin -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
    assert len(block.encode()) <= 8 * 1024
    long = [line for line in block.splitlines() if line.startswith("|") and len(line.encode()) > 200]
    assert not long, f"the README's {name} block has table lines over 200 bytes: {long[:2]}"
    targets = re.findall(r"\]\(([^)#]+)[^)]*\)", block) + re.findall(r"^\[[^\]]+\]: ([^\s#]+)", block, flags=re.M)
    assert targets, f"the README's {name} block links to nothing"
    missing = [t for t in targets if not t.startswith("http") and not (ROOT / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def current_runs() -> list[tuple[Path, dict]]:
    """(path, data) of the reference runs in the current format; skips the test when there is none."""
    from harness import record

    found = [(p, data) for p in RUNS if record.format_of(data := json.loads(p.read_text())) == record.SUITE_FORMAT]
    if not found:
        pytest.skip("no reference run of the current format yet")
    return found


@pytest.mark.skipif(not RUNS, reason="no reference runs under results/")
def test_every_time_figure_of_a_current_run_is_recorded_in_seconds():
    from harness import record

    for path, data in current_runs():
        units = [f["unit"] for b in data["benchmarks"] for f in (b.get("extra_info") or {}).get("figures", {}).values()]
        units += [c["unit"] for b in data["benchmarks"] for c in (b.get("extra_info") or {}).get("checks", [])]
        for unit in units:
            record.check_unit(unit)  # raises on ms, µs or ns
        assert any(u.split(" ")[0] == "s" for u in units), f"{path.name} records no time at all"


@pytest.mark.skipif(not RUNS, reason="no reference runs under results/")
def test_every_deciding_check_of_the_reference_runs_has_an_opposite_world_or_a_reason():
    """Each check the catalogue names as deciding was measured beside an opposite world in every
    reference run that recorded it, or the catalogue says why no opposite world can be built; and
    every deciding check is recorded by some run (a rename on either side would hide it)."""
    from harness import catalogue

    claims = catalogue.load()
    seen: dict[str, set[str]] = {}
    missing = []
    for path, data in current_runs():
        for bench in data["benchmarks"]:
            info = bench.get("extra_info") or {}
            claim = claims.get(info.get("claim"))
            if claim is None:
                continue
            for check in info.get("checks", []):
                if check["name"] not in claim.deciding or check["role"] != "support":
                    continue
                seen.setdefault(claim.id, set()).add(check["name"])
                if not check.get("opposite") and check["name"] not in claim.unfalsified:
                    missing.append(f"{path.parent.parent.name}: {claim.id} {info['part']}: {check['name']}")
    assert not missing, "deciding checks with neither an opposite world nor a catalogue reason:\n" + "\n".join(missing)
    unrecorded = [f"{c.id}: {name}" for c in claims.values() if c.id in seen
                  for name in c.deciding if name not in seen[c.id]]
    assert not unrecorded, f"deciding checks that no reference run records: {unrecorded}"


@pytest.mark.skipif(not RUNS, reason="no reference runs under results/")
def test_every_placeholder_in_the_catalogue_is_filled_from_the_reference_runs():
    from harness import catalogue
    from reporting import model, placeholders, runs

    loaded = runs.load_runs([path for path, _ in current_runs()], None)
    views = model.views(catalogue.load(), runs.columns(loaded))
    empty = [f"{v.id}.{field}: {p}" for v in views for field, text in placeholders.texts(v.claim)
             for p in placeholders.unresolved(text, v)]
    assert not empty, "placeholders the reference runs do not fill:\n" + "\n".join(empty)


FULL_SCALE_RUNS = sorted((ROOT / "results" / "full-scale").glob("*/*/*.json"))


@pytest.mark.skipif(not RUNS, reason="no reference runs under results/")
def test_every_published_environment_has_a_full_scale_scaling_plot():
    """make scaling's runs sit beside the quick ones, one per environment, each drawn on results/scaling.md."""
    envs = {p.parent.parent.name for p in RUNS}
    assert envs <= {p.parent.parent.name for p in FULL_SCALE_RUNS}, "an environment has no full-scale run"
    page = (ROOT / "results" / "scaling.md").read_text(encoding="utf-8")
    for env in envs:
        anchor = "env-" + "".join(ch if ch.isalnum() else "-" for ch in full_scale_key(env).lower())
        plot = f"site/plots/scaling-{anchor}.png"
        assert f"]({plot})" in page, f"results/scaling.md does not draw {env}"
        assert (ROOT / "results" / plot).read_bytes().startswith(b"\x89PNG")
