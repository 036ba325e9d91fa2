"""report.py: pages, tables, plots and CSVs from runs, and a publisher that never corrupts."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import report
from harness import catalogue, environment
from reporting import build, compare, numbers, pages, plots, runs
from tests.conftest import ENV, FREE_THREADED, bench, check, env, figure, skipped

CLAIMS = catalogue.load()
TESTABLE = [c.id for c in CLAIMS.values() if c.expected != "not-testable"]
NOT_TESTABLE = [c.id for c in CLAIMS.values() if c.expected == "not-testable"]


def build_report(tmp_path, *extra) -> tuple[int, Path]:
    out = tmp_path / "out"
    return report.main([str(tmp_path / "runs"), "--out", str(out), *extra]), out


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def verdicts(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "verdicts.csv", keep_default_na=False)


# --- what the report says ----------------------------------------------------------------------
def test_every_catalogued_claim_appears_in_every_environment(write_run, tmp_path):
    write_run("0001.json", [bench()])
    status, out = build_report(tmp_path)
    assert status == 0
    rows = verdicts(out)
    assert list(rows["id"]) == list(CLAIMS)
    by_id = rows.set_index("id")
    assert by_id.loc["TH4", "verdict"] == "holds"
    assert by_id.loc["TH4", "differs_from_expected"] in (True, "True")
    other = next(cid for cid in TESTABLE if cid != "TH4")
    assert by_id.loc[other, "verdict"] == catalogue.NOT_MEASURED
    assert "no run" in by_id.loc[other, "not_measured_reasons"]
    for cid in NOT_TESTABLE:
        assert by_id.loc[cid, "verdict"] == "not-testable"
    for cid in CLAIMS:
        assert (out / "claims" / f"{cid}.md").is_file() and (out / "site" / "claims" / f"{cid}.html").is_file()


def test_a_run_where_everything_skipped_is_reported_with_its_reasons(write_run, tmp_path):
    write_run("0001.json", [], not_measured=[skipped("TH4", "test_a", "another process keeps a CPU busy")])
    status, out = build_report(tmp_path)
    assert status == 0
    th4 = verdicts(out).set_index("id").loc["TH4"]
    assert th4["verdict"] == catalogue.NOT_MEASURED
    assert "another process keeps a CPU busy" in th4["not_measured_reasons"]
    page = (out / "claims" / "TH4.md").read_text()
    assert "not measured here: test_a: another process keeps a CPU busy" in page


def test_a_part_not_measured_shows_the_figures_that_said_so(write_run, tmp_path):
    evidence = bench()["extra_info"] | {"verdict": catalogue.NOT_MEASURED, "checks": [],
                                        "figures": {"free_cores": figure(0.4, "cores")}}
    write_run("0001.json", [], not_measured=[skipped("TH4", "test_a", "no CPU free") | {"evidence": evidence}])
    _, out = build_report(tmp_path)
    assert "| test_a (not measured) | free_cores | 0.4 cores |" in (out / "claims" / "TH4.md").read_text()


def test_caveat_only_parts_never_decide_a_claim(write_run, tmp_path):
    caveat_only = bench(name="test_b[hashlib]", verdict="holds-with-caveat", params={"work": "hashlib"},
                        checks=[check(op=">=", value=1.6, role="caveat")])
    write_run("0001.json", [caveat_only], not_measured=[skipped("TH4", "test_a")])
    _, out = build_report(tmp_path)
    assert verdicts(out).set_index("id").loc["TH4", "verdict"] == catalogue.NOT_MEASURED


def test_environments_are_never_merged_and_flips_are_highlighted(write_run, tmp_path):
    write_run("0001.json", [bench(verdict="holds-with-caveat")], env=ENV)
    write_run("0001.json", [bench(verdict="refuted", checks=[check(value=1.9, passed=False)])], env=FREE_THREADED)
    status, out = build_report(tmp_path)
    assert status == 0
    th4 = verdicts(out).query("id == 'TH4'")
    assert sorted(th4["verdict"]) == ["holds-with-caveat", "refuted"]
    assert set(th4["environment"]) == {environment.slug(ENV), environment.slug(FREE_THREADED)}
    assert list(th4["differs_from_expected"].astype(str)) == ["False", "False"]  # no_gil expects refuted
    index = (out / "REPORT.md").read_text()
    assert "CPython 3.13.5t (GIL off)" in index and "**refuted" in index
    assert 'class="flip"' in (out / "site" / "index.html").read_text()


def test_each_environment_reports_its_newest_run_that_selected_the_claim(write_run, tmp_path):
    write_run("0001.json", [bench(verdict="refuted", checks=[check(passed=False)])], when="2026-01-01T00:00:00")
    write_run("0002.json", [bench(verdict="holds")], when="2026-01-02T00:00:00")
    write_run("0003.json", [bench(claim="PR4", name="test_p")], when="2026-01-03T00:00:00")
    _, out = build_report(tmp_path)
    rows = verdicts(out).set_index("id")
    assert rows.loc["TH4", "verdict"] == "holds" and rows.loc["TH4", "run"] == "0002.json"
    assert rows.loc["PR4", "run"] == "0003.json"


def test_runs_from_several_machines_stand_side_by_side(write_run, tmp_path):
    write_run("0001.json", [bench()], root="gathered/machine-a")
    write_run("0001.json", [bench(verdict="refuted", checks=[check(passed=False)])], root="gathered/machine-b")
    status = report.main([str(tmp_path / "gathered"), "--out", str(tmp_path / "out")])
    assert status == 0
    th4 = verdicts(tmp_path / "out").query("id == 'TH4'")
    assert sorted(th4["origin"]) == ["machine-a", "machine-b"]


def test_pages_open_with_verdict_caveat_and_deciding_figures_in_words(write_run, tmp_path):
    checks = [check(interval=[0.99, 1.02], n=7), check("thread_speedup", 0.95, "<=", 1.5, "x", passed=None,
                                                       interval=[0.9, 1.6], n=7)]
    write_run("0001.json", [bench(checks=checks, notes=["same note", "same note", "other note"])])
    _, out = build_report(tmp_path)
    page = (out / "claims" / "TH4.md").read_text()
    claim = CLAIMS["TH4"]
    assert page.index("## Verdict") < page.index("**Caveat:**") or claim.caveat == ""
    assert "thread_cores was 1.01 cores (95% interval 0.99–1.02 cores, n=7); needs at most 1.3 cores: passed" in page
    assert "thread_speedup was 0.95× (95% interval 0.9–1.6×, n=7); needs at most 1.5×: undecided" in page
    assert page.count("same note") == 1
    assert f"Experiment: `{claim.file}`." in page  # out lies outside the repository: no link
    assert claim.control in page
    html = (out / "site" / "claims" / "TH4.html").read_text()
    assert "<details><summary>Checks" in html and 'id="TH4"' in html
    for page in (out / "site").rglob("*.html"):  # offline: nothing fetched from elsewhere
        assert not re.search(r'(src|href)="(https?:)?//', page.read_text()), page


def test_experiment_links_are_relative_to_the_page_inside_the_repository(write_run, tmp_path):
    write_run("0001.json", [bench()])
    claim = CLAIMS["TH4"]
    inside = pages.ROOT / "results"  # rendered in memory only: nothing is written into the checkout
    files = build.prepare([tmp_path / "runs"], inside, repo=None).files
    page = files[inside / "claims" / "TH4.md"]
    assert f"Experiment: [{claim.file}](../../{claim.file})." in page
    assert f'href="../../../{claim.file}"' in files[inside / "site" / "claims" / "TH4.html"]
    assert f"](../{claim.file}))" in files[inside / "REPORT.md"]
    outside = tmp_path / "elsewhere"
    files = build.prepare([tmp_path / "runs"], outside, repo=None).files
    for path in (outside / "claims" / "TH4.md", outside / "site" / "claims" / "TH4.html", outside / "REPORT.md"):
        text = files[path]
        assert claim.file in text and f"/{claim.file}" not in text, path  # no ../../../<checkout>/experiments/…
    assert f"Experiment: `{claim.file}`." in files[outside / "claims" / "TH4.md"]
    assert f"<code>{claim.file}</code>" in files[outside / "site" / "claims" / "TH4.html"]


def test_index_names_the_machine_and_has_contents_with_stable_anchors(write_run, tmp_path):
    write_run("0001.json", [bench()])
    _, out = build_report(tmp_path)
    index = (out / "REPORT.md").read_text()
    for text in ("Test CPU 9000", "2 cores", "Linux 6.1.0-test", "abc123", "2026-01-01 00:00"):
        assert text in index
    for cid in CLAIMS:
        assert f'<a id="{cid}"></a>[{cid}](claims/{cid}.md)' in index


def test_no_markdown_table_line_is_over_200_characters(write_run, tmp_path):
    long_params = {f"parameter_{i}": "x" * 30 for i in range(8)}
    parts = [bench(name=f"test_{'very_long_name_' * 8}[{i}]", params={**long_params, "i": i},
                   checks=[check(why="w" * 300), check("n" * 120, role="caveat", op=">=")]) for i in range(3)]
    write_run("0001.json", parts)
    write_run("0001.json", [bench()], env=FREE_THREADED)
    _, out = build_report(tmp_path)
    for page in [out / "REPORT.md", *sorted((out / "claims").glob("*.md"))]:
        for line in table_lines(page.read_text()):
            assert len(line) <= pages.MAX_LINE, (page.name, line)


SIX = [env(python="3.11.7"), env(python="3.12.1"), env(python="3.13.0"), env(python="3.13.5"),
       env(python="3.13.5", free_threaded=True, gil="off"), env(python="3.14.0", free_threaded=True, gil="off")]


def _six_environments(write_run) -> None:
    """Six environments on two machine folders (longer headings), every run stale (†), TH4 flipping
    (bold) and refuted where the catalogue expects a caveat (⚠): the widest verdict cells there are,
    beside parts with long test names and long parameter names and values."""
    long_params = {f"a_rather_long_parameter_name_{i}": f"value-{'x' * 24}-{i}" for i in range(4)}
    for k, e in enumerate(SIX):
        root = "gathered/" + ("machine-a" if k < 3 else "a-machine-with-a-long-folder-name")
        parts = [bench(claim=cid, name=f"test_{cid}") for cid in TESTABLE if cid not in ("TH4", "CM1")]
        parts += [bench(claim="TH4", verdict="refuted" if k % 2 else "holds", checks=[check(passed=not k % 2)])]
        parts += [bench(claim="CM1", name=f"test_channel_delivers_every_message_intact_{'and_more_' * 4}[{i}]",
                        params={**long_params, "payload": 65536 * i},
                        checks=[check("round_trip_latency_of_a_message_between_two_workers", 0.00012, "<=", 0.01,
                                      "s", interval=[0.0001, 0.00013], n=15, why="w" * 300),
                                check("n" * 120, role="caveat", op=">=")],
                        figures={"round_trip_latency": figure(0.00012, "ns per message (batched waits, " + "y" * 60
                                                              + ")", interval=[0.0001, 0.00013], n=15)})
                  for i in range(3)]
        write_run("0001.json", parts, env=e, root=root)


def test_no_table_line_is_over_200_characters_with_six_environments(write_run, tmp_path):
    _six_environments(write_run)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    out = tmp_path / "out"
    status = report.main([str(tmp_path / "gathered"), "--out", str(out), "--readme", str(readme), "--include-stale"])
    assert status == 0
    block = readme.read_text().split("<!-- verdicts:begin -->")[1].split("<!-- verdicts:end -->")[0]
    assert len(block.encode()) <= pages.README_MAX
    written = sorted(out.rglob("*.md"))
    assert len(written) == 2 + len(CLAIMS) + len(list((out / "units").glob("*.md")))
    index = (out / "REPORT.md").read_text()
    assert "**refuted** ⚠ †" in index or "**refuted ⚠ †**" in index  # the widest cells were there to fit
    for name, text in [("README block", block)] + [(p.name, p.read_text()) for p in written]:
        for line in table_lines(text):  # counted in bytes: within 200 however a reader counts
            assert len(line.encode()) <= pages.MAX_LINE, (name, len(line.encode()), line)
    cm1 = (out / "claims" / "CM1.md").read_text()
    assert "| E1 | P1 | support |" in cm1 and "- P1: a rather long parameter name 0 value-" in cm1  # below the table
    for text in (block, index):  # the environments' names whole, below the matrix when too wide for its header
        assert "CPython 3.14.0t (GIL off) (a-machine-with-a-long-folder-name)" in text
    for claim in CLAIMS.values():  # every title is still published whole, in the index and the README
        assert f"[{claim.id}](claims/{claim.id}.md): {claim.title}" in index
        assert claim.title in block


def test_matrix_keeps_full_names_and_titles_while_they_fit(write_run, tmp_path):
    write_run("0001.json", [bench()], env=SIX[0])
    write_run("0001.json", [bench(verdict="refuted", checks=[check(passed=False)])], env=SIX[4])
    _, out = build_report(tmp_path)
    index = (out / "REPORT.md").read_text()
    cell = "[**holds** (expected holds-with-caveat) (stale)][TH4a]"
    assert f"| [TH4](claims/TH4.md) | {CLAIMS['TH4'].title} | {cell} |" in index
    assert "[TH4a]: claims/TH4.md#env-" in index and "…" not in "\n".join(table_lines(index))


@pytest.mark.parametrize("count", [1, 7, 30])
def test_md_table_keys_long_columns_then_cuts(count):
    rows = [[f"environment {i % 3}", "p" * 190 + str(i), "value"] for i in range(count)]
    text = pages.md_table(["environment", "part", "value"], rows, keys={1: "P", 0: "E"})
    lines = table_lines(text)
    assert all(pages.width(line) <= pages.MAX_LINE for line in lines) and "…" not in text
    assert lines[2] == "| environment 0 | P1 | value |"
    assert f"- P{count}: {'p' * 190}{count - 1}" in text
    wide = pages.md_table(["a", "b"], [["µ" * 150, "x" * 150]])
    assert all(pages.width(line) <= pages.MAX_LINE for line in table_lines(wide)) and "…" in wide
    with pytest.raises(pages.TooWide):
        pages.md_table(["a"], [["y" * 300]], cut=False)


# --- numbers people read ---------------------------------------------------------------------------
@pytest.mark.parametrize("value, unit, text", [
    (0.000_002_5, "s", "2.5 µs"), (0.25, "s", "250 ms"), (4.0, "us", "4 µs"), (89e-9, "s", "89 ns"),
    (3 << 20, "B", "3 MiB"), (1234, "", "1,234"), (11_500.3, "calls/s", "11,500 calls/s"),
    (1.15e4, "calls/s", "11,500 calls/s"), (0.00189, "cores", "0.00189 cores"), (0.123456, "x", "0.123×"),
    (1, "cores", "1 core"), (1.0, "cores", "1 core"), (2, "switches", "2 switches"), (1, "switches", "1 switch"),
    (True, "", "yes"), ("SIGABRT", "", "SIGABRT"), (1_494_842, "threads", "1,494,842 threads"),
    (1.23, "us (batched back-to-back waits)", "1.23 µs (batched back-to-back waits)"),
])
def test_values_are_formatted_for_people(value, unit, text):
    assert numbers.fmt(value, unit) == text


def test_no_scientific_notation_and_one_spelling_of_microseconds(write_run, tmp_path):
    figs = {"tiny": figure(1.2e-7, "s"), "huge": figure(1.15e9, "calls/s"), "per_call": figure(4.0, "us")}
    write_run("0001.json", [bench(figures=figs)])
    _, out = build_report(tmp_path)
    text = (out / "claims" / "TH4.md").read_text()
    assert not re.search(r"\d[eE][+-]\d", text)
    assert " us" not in text and "4 µs" in text and "1,150,000,000 calls/s" in text


def test_params_sort_as_numbers(write_run, tmp_path):
    parts = [bench(name=f"test_z[{n}]", params={"n_fds": n}) for n in (100, 1000, 10000, 100000, 500)]
    write_run("0001.json", parts)
    _, out = build_report(tmp_path)
    rows = [line for line in table_lines((out / "claims" / "TH4.md").read_text()) if "| support |" in line]
    order = [int(re.search(r"n fds (\d+)", line).group(1)) for line in rows]
    assert order == sorted(order)


# --- plots -------------------------------------------------------------------------------------------
def test_declared_plots_draw_the_claims_figures_with_thresholds_and_intervals(write_run, tmp_path):
    parts = [bench(name=f"test_w[{k}]", params={"workers": k},
                   checks=[check(value=1.0 + k / 100, interval=[0.9, 1.2], n=7)],
                   figures={"thread_cores": figure(1.0 + k / 100, "cores", interval=[0.9, 1.2], n=7),
                            "process_cores": figure(k * 0.9, "cores", q1=k * 0.8, q3=k)})
             for k in (2, 4)]
    write_run("0001.json", parts)
    _, out = build_report(tmp_path)
    pngs = sorted(p.name for p in (out / "site" / "plots").glob("TH4-*.png"))
    assert "TH4-2-cores-kept-busy.png" in pngs
    assert "site/plots/TH4-2-cores-kept-busy.png" in (out / "claims" / "TH4.md").read_text()
    view = build.prepare([tmp_path / "runs"], tmp_path / "o2", repo=None).views
    th4 = next(v for v in view if v.id == "TH4")
    series, checks_, unit, _ = plots.collect(th4, plots.PLOTS["TH4"][1])
    assert set(series) == {"thread_cores", "process_cores"} and unit == "cores"
    assert [c["threshold"] for c in checks_] == [1.3, 1.3]  # threshold lines come from the run's checks


def _th4_views(write_run, tmp_path, workers=(2,)):
    for e, cores in ((ENV, 1.0), (FREE_THREADED, 1.9)):
        parts = [bench(name=f"test_w[{k}]", params={"workers": k}, checks=[check(value=cores)],
                       figures={"thread_cores": figure(cores, "cores", interval=[cores - 0.1, cores + 0.1], n=7),
                                "process_cores": figure(1.8, "cores", q1=1.6, q3=1.9)}) for k in workers]
        write_run("0001.json", parts, env=e)
    views = build.prepare([tmp_path / "runs"], tmp_path / "o", repo=None).views
    return next(v for v in views if v.id == "TH4")


def test_a_plot_whose_x_took_one_value_puts_the_environments_side_by_side(write_run, tmp_path):
    th4 = _th4_views(write_run, tmp_path)
    plot = plots.PLOTS["TH4"][1]  # cores kept busy, x = workers: only workers=2 was measured
    series, *_ = plots.collect(th4, plot, env_axis=True)
    assert set(series) == {"thread_cores", "process_cores"}  # hue: the variant, not the environment
    envs = ["CPython 3.13.5", "CPython 3.13.5t (GIL off)"]
    for s in series.values():
        assert [p[0] for p in s.points] == envs  # x: the environments, each with its own whiskers
    assert series["thread_cores"].points[1][1:] == pytest.approx((1.9, 1.8, 2.0))
    drawn, note = plots.draw(th4, plot, 2)
    assert note == "" and drawn.alt == "TH4: Cores kept busy (workers = 2)"


def test_a_real_sweep_keeps_a_line_per_environment_dodged_and_alt_text_stays_short(write_run, tmp_path):
    th4 = _th4_views(write_run, tmp_path, workers=(2, 4, 8))
    series, *_ = plots.collect(th4, plots.PLOTS["TH4"][1])
    assert len(series) == 4 and all(len(s.points) == 3 for s in series.values())
    assert {s.env for s in series.values()} == {"CPython 3.13.5", "CPython 3.13.5t (GIL off)"}
    styles = plots.styles(series)  # a colour per environment, a marker per figure
    assert len({st["color"] for st in styles.values()}) == 2 and len({st["marker"] for st in styles.values()}) == 2
    offsets = plots.dodge([2, 4, 8], 4, log=False)
    assert offsets == sorted(offsets) and len(set(offsets)) == 4 and sum(offsets) == pytest.approx(0)
    assert max(offsets) - min(offsets) <= 0.06 * (8 - 2)
    log_offsets = plots.dodge([10, 100, 4000], 3, log=True)
    assert log_offsets[1] == 0 and 0 < log_offsets[2] <= 0.06 * 3
    assert plots.dodge([2, 4], 1, log=False) == [0.0]
    drawn, _ = plots.draw(th4, plots.PLOTS["TH4"][1], 2)
    assert drawn.alt == "TH4: Cores kept busy"
    _, out = build_report(tmp_path)
    for page in [*(out / "claims").glob("*.md"), *(out / "site" / "claims").glob("*.html")]:
        for alt in re.findall(r'!\[([^]]*)\]\(|alt="([^"]*)"', page.read_text()):
            assert len("".join(alt)) <= 80, (page.name, alt)


def test_a_declared_figure_missing_from_the_run_leaves_its_plot_out_with_a_note(write_run, tmp_path):
    write_run("0001.json", [bench(figures={"renamed_figure": figure()})])
    status, out = build_report(tmp_path)
    assert status == 0
    page = (out / "claims" / "TH4.md").read_text()
    assert "left out: no run recorded thread_speedup, process_speedup by workers" in page


def test_stale_plots_and_pages_are_removed(write_run, tmp_path):
    write_run("0001.json", [bench()])
    (tmp_path / "out" / "site" / "plots").mkdir(parents=True)
    (tmp_path / "out" / "claims").mkdir(parents=True)
    old_plot = tmp_path / "out" / "site" / "plots" / "TH4-9-an-old-plot.png"
    old_page = tmp_path / "out" / "claims" / "ZZ9.md"
    keep = tmp_path / "out" / "claims" / "notes.txt"
    for path in (old_plot, old_page, keep):
        path.write_text("old")
    build_report(tmp_path)
    assert not old_plot.exists() and not old_page.exists() and keep.exists()


# --- CSVs ------------------------------------------------------------------------------------------
def test_figures_csv_pivots_in_pandas_as_is(write_run, tmp_path):
    figs = {"thread_cores": figure(1.01), "exit_status": figure("SIGABRT", ""), "intact": figure(True, "")}
    write_run("0001.json", [bench(figures=figs)])
    write_run("0001.json", [bench(figures=figs)], env=FREE_THREADED)
    _, out = build_report(tmp_path)
    frame = pd.read_csv(out / "figures.csv")
    assert frame["value"].dtype == "float64"
    assert set(frame.loc[frame["figure"] == "exit_status", "text"]) == {"SIGABRT"}
    for column in ("environment", "python", "free_threaded", "gil", "cpu_model", "kernel"):
        assert column in frame
    pivot = frame[frame["figure"] == "thread_cores"].pivot_table(index="figure", columns="gil", values="value")
    assert list(pivot.columns) == ["off", "on"]


def test_comparison_gives_ratio_and_mann_whitney_or_n_too_small(write_run, tmp_path):
    a_samples, b_samples = [1.0, 1.01, 0.99, 1.02, 1.0, 0.98], [1.9, 1.95, 1.85, 1.9, 2.0, 1.92]
    def part(samples, passed):
        return bench(checks=[check(value=samples[0], passed=passed, interval=[0.9, 2.1], n=6),
                             check("thread_speedup", 1.0, "<=", 1.5, "x")],
                     figures={"thread_cores": figure(sorted(samples)[3], "cores", samples=samples),
                              "thread_speedup": figure(1.0, "x", n=3)})
    write_run("0001.json", [part(a_samples, True)], env=ENV)
    write_run("0001.json", [part(b_samples, False)], env=FREE_THREADED)
    _, out = build_report(tmp_path)
    frame = pd.read_csv(out / "comparison.csv", keep_default_na=False).set_index("figure")
    assert frame.loc["thread_cores", "verdict"].startswith("differs (Mann-Whitney p")
    assert float(frame.loc["thread_cores", "ratio"]) == pytest.approx(1.92 / 1.01, rel=0.02)
    assert frame.loc["thread_speedup", "verdict"].startswith("n too small")
    assert compare.MIN_SIDE == 5


def test_compare_lists_verdict_flips_first(write_run, tmp_path, capsys):
    write_run("0001.json", [bench(verdict="holds-with-caveat")], env=ENV)
    b = write_run("0001.json", [bench(verdict="refuted", checks=[check(passed=False)])], env=FREE_THREADED)
    status = report.main([str(tmp_path / "runs"), "--compare", environment.slug(ENV), str(b)])
    printed = capsys.readouterr().out
    assert status == 0
    assert printed.index("Verdict flips (1)") < printed.index("Deciding figures")
    assert "| TH4 |" in printed


# --- README -----------------------------------------------------------------------------------------
README = "# Title\n\nBefore.\n\n<!-- verdicts:begin -->\nold table\n<!-- verdicts:end -->\n\nAfter.\n"


def test_readme_block_links_each_id_to_its_page_with_commit_and_date(write_run, tmp_path):
    write_run("0001.json", [bench()])
    readme = tmp_path / "README.md"
    readme.write_text(README)
    readme.chmod(0o640)
    status, out = build_report(tmp_path, "--readme", str(readme), "--include-stale")
    assert status == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nBefore.\n") and text.endswith("After.\n") and "old table" not in text
    assert "Measured at commit abc123 on 2026-01-01" in text and "Test CPU 9000" in text
    rel = os.path.relpath(out / "claims", tmp_path)
    assert f"| [TH4]({rel}/TH4.md) | {CLAIMS['TH4'].title} | holds" in text
    assert stat.S_IMODE(readme.stat().st_mode) == 0o640


def test_readme_block_stays_under_8_kb_with_five_environments(write_run, tmp_path):
    for i, python in enumerate(("3.11.7", "3.12.1", "3.13.5", "3.13.5t", "3.14.0")):
        e = env(python=python) if not python.endswith("t") else env(python=python[:-1], free_threaded=True,
                                                                     gil="off")
        write_run(f"000{i}.json", [bench(claim=cid, name=f"test_{cid}") for cid in TESTABLE], env=e)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    status, _ = build_report(tmp_path, "--readme", str(readme), "--include-stale")
    assert status == 0
    block = readme.read_text().split("<!-- verdicts:begin -->")[1].split("<!-- verdicts:end -->")[0]
    assert len(block.encode()) <= pages.README_MAX
    for text in (block, (tmp_path / "out" / "REPORT.md").read_text()):  # short verdict names, never cut titles
        lines = table_lines(text)
        assert all(len(line) <= pages.MAX_LINE for line in lines)
        assert all(f"| {claim.title} |" in "\n".join(lines) for claim in CLAIMS.values())


# --- a publisher that never corrupts --------------------------------------------------------------------
BAD_RUNS = {
    "check without passed": lambda d: d["benchmarks"][0]["extra_info"]["checks"][0].pop("passed"),
    "null conditions": lambda d: d["benchmarks"][0]["extra_info"].update(conditions=None),
    "q1 without q3": lambda d: d["benchmarks"][0]["extra_info"]["figures"]["thread_cores"].update(q1=0.9),
    "unknown verdict": lambda d: d["benchmarks"][0]["extra_info"].update(verdict="mostly-holds"),
    "unknown role": lambda d: d["benchmarks"][0]["extra_info"]["checks"][0].update(role="hint"),
    "bad interval": lambda d: d["benchmarks"][0]["extra_info"]["checks"][0].update(interval=[1]),
    "unknown GIL state": lambda d: d["environment"].update(gil="maybe"),
    "not-measured entry without reason": lambda d: d.update(not_measured=[{"claim": "TH4", "part": "x"}]),
    "foreign claim IDs": lambda d: d["benchmarks"].append(
        {**d["benchmarks"][0], "extra_info": {**d["benchmarks"][0]["extra_info"], "claim": "ZZTH4"}}),
    "unknown suite_format": lambda d: d.update(suite_format=99),
    "suite_format not an int": lambda d: d.update(suite_format="2"),
}


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(BAD_RUNS) + ["truncated", "binary", "no catalogued claim", "missing path"])
def test_bad_input_exits_2_with_one_line_and_leaves_the_report_untouched(case, write_run, tmp_path, capsys):
    from tests.conftest import run_json

    good = write_run("0001.json", [bench()])
    assert build_report(tmp_path)[0] == 0
    readme = tmp_path / "README.md"
    readme.write_text(README)
    before = _outputs(tmp_path / "out")
    capsys.readouterr()
    args = []
    if case in BAD_RUNS:
        data = run_json([bench()])
        BAD_RUNS[case](data)
        good.write_text(json.dumps(data))
    elif case == "truncated":
        good.write_text(good.read_text()[:200])
    elif case == "binary":
        good.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    elif case == "no catalogued claim":
        good.write_text(json.dumps(run_json([bench(claim="ZZ99")])))
    else:
        args = [str(tmp_path / "nowhere")]
    status = report.main((args or [str(tmp_path / "runs")]) + ["--out", str(tmp_path / "out"), "--readme",
                                                               str(readme), "--include-stale"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("report.py: "), err
    assert _outputs(tmp_path / "out") == before
    assert readme.read_text() == README


def test_a_foreign_claim_id_is_refused_naming_it(write_run, tmp_path, capsys):
    write_run("0001.json", [bench(), bench(claim="ZZTH4"), bench(claim="ZZPR4")])
    status, _ = build_report(tmp_path)
    err = capsys.readouterr().err
    assert status == 2
    assert "ZZPR4, ZZTH4" in err and "0001.json" in err


def test_a_run_without_suite_format_but_with_an_environment_is_format_1(write_run, tmp_path):
    from harness import record
    from tests.conftest import run_json

    data = run_json([bench()])
    del data["suite_format"]
    assert record.format_of(data) == 1
    write_run("0001.json", [], raw=json.dumps(data))
    assert build_report(tmp_path)[0] == 0


def test_older_runs_without_an_environment_are_ignored_with_a_warning(write_run, tmp_path, capsys):
    write_run("0001.json", [bench()])
    write_run("0000.json", [], raw=json.dumps({"machine_info": {}, "benchmarks": [bench()], "datetime": "x"}))
    status, _ = build_report(tmp_path)
    assert status == 0
    assert "older run without an environment key" in capsys.readouterr().err


def test_files_are_written_with_the_umask_modes(write_run, tmp_path):
    write_run("0001.json", [bench()])
    old = os.umask(0o022)
    try:
        _, out = build_report(tmp_path)
    finally:
        os.umask(old)
    for path in (out / "REPORT.md", out / "verdicts.csv", out / "claims" / "TH4.md", out / "site" / "index.html"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# --- stale runs -----------------------------------------------------------------------------------------
def _git(repo: Path, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_a_run_is_stale_once_experiments_or_harness_change_after_its_commit(tmp_path):
    repo = tmp_path / "repo"
    (repo / "harness").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@t")
    _git(repo, "config", "user.name", "t")
    (repo / "harness" / "a.py").write_text("x = 1\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "README").write_text("docs only\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "docs")
    assert runs.changed_since(first, repo) == ""
    (repo / "harness" / "a.py").write_text("x = 2\n")
    _git(repo, "commit", "-qam", "harness")
    assert "changed since its commit" in runs.changed_since(first, repo)
    assert "not in this repository" in runs.changed_since("0" * 40, repo)


def test_publishing_leaves_stale_runs_out_and_fails_only_when_none_remains(write_run, tmp_path, capsys):
    write_run("0001.json", [bench()], commit="0" * 40)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    status, _ = build_report(tmp_path, "--readme", str(readme))
    assert status == 2 and "no current run remains" in capsys.readouterr().err
    head = _git(pages.ROOT, "rev-parse", "HEAD")
    write_run("0002.json", [bench(claim="PR4", name="test_p")], commit=head, when="2026-01-02T00:00:00")
    status, out = build_report(tmp_path, "--readme", str(readme))
    err = capsys.readouterr().err
    assert "left out as stale" in err
    if runs.changed_since(head, pages.ROOT):  # a dirty checkout under development: nothing current
        assert status == 2
    else:
        assert status == 0
        assert verdicts(out).set_index("id").loc["TH4", "verdict"] == catalogue.NOT_MEASURED


# --- the environment key across reboots and machines ------------------------------------------------
def test_runs_whose_kernels_differ_only_in_the_build_suffix_are_one_column(write_run, tmp_path):
    write_run("0001.json", [bench()], env=env(kernel="6.18.44-fc-v595"), when="2026-01-01T00:00:00")
    write_run("0002.json", [bench()], env=env(kernel="6.18.44-fc-v1098"), when="2026-01-02T00:00:00")
    cols = runs.columns(runs.load_runs([tmp_path / "runs"], None))
    assert len(cols) == 1 and len(cols[0].runs) == 2


def test_no_two_columns_share_a_heading(write_run, tmp_path):
    write_run("0001.json", [bench()], env=env(cpu_model="CPU A"))
    write_run("0002.json", [bench()], env=env(cpu_model="CPU B", kernel="6.2.0-test"))
    write_run("0003.json", [bench()], env=env(python="3.12.1"))
    cols = runs.columns(runs.load_runs([tmp_path / "runs"], None))
    headings = [runs.heading(c, cols) for c in cols]
    assert len(set(headings)) == len(cols) == 3, headings
    assert "CPython 3.12.1" in headings
    assert any("CPU A, kernel 6.1.0" in h for h in headings), headings
    status, out = build_report(tmp_path)
    assert status == 0
    header = next(line for line in (out / "REPORT.md").read_text().splitlines() if line.startswith("| ID"))
    assert len(set(header.split("|"))) == len(header.split("|")) - 1, header  # only the two empty ends repeat


def test_a_checks_opposite_world_is_validated_and_shown_beside_it(write_run, tmp_path):
    other = {"label": "a busy-polling reader", "value": 0.97, "interval": [0.9, 1.01], "n": 6, "passed": False}
    write_run("0001.json", [bench(checks=[check(opposite=other)])])
    status, out = build_report(tmp_path)
    assert status == 0
    page = (out / "claims" / "TH4.md").read_text()
    assert "a busy-polling reader" in page and "opposite world" in page
    could = page.split("## Could it fail?", 1)[1].split("##", 1)[0]
    assert "| yes |" in could
    index = (out / "REPORT.md").read_text().split("## Could each verdict have failed?", 1)[1]
    assert "| [TH4](claims/TH4.md) | every deciding check |" in index
    write_run("0001.json", [bench(checks=[check(opposite={**other, "passed": "no"})])])
    assert build_report(tmp_path)[0] == 2


def test_a_check_without_an_opposite_world_says_so_and_the_index_counts_it(write_run, tmp_path):
    other = {"label": "processes", "value": 1.9, "interval": [1.8, 1.95], "n": 6, "passed": False}
    write_run("0001.json", [bench(name="test_a[2]", checks=[check(opposite=other)]),
                            bench(name="test_b[2]", checks=[check(value=1.0)])])
    status, out = build_report(tmp_path)
    assert status == 0
    page = (out / "claims" / "TH4.md").read_text()
    assert "no opposite world measured" in page.split("## Could it fail?", 1)[1]
    assert "| [TH4](claims/TH4.md) | 1 of 2 deciding checks |" in (out / "REPORT.md").read_text()


def test_a_deciding_check_the_catalogue_calls_unfalsifiable_is_marked_with_its_reason(write_run, tmp_path):
    from harness import catalogue

    claim = catalogue.load()["IO2"]
    name, why = next(iter(claim.unfalsified.items()))
    write_run("0001.json", [bench(claim="IO2", name="test_x", checks=[check(name=name, op=">=", threshold=0.5)])])
    status, out = build_report(tmp_path)
    assert status == 0
    could = (out / "claims" / "IO2.md").read_text().split("## Could it fail?", 1)[1].split("\n## ", 1)[0]
    assert "cannot be falsified here" in could and why in could
    assert f"rests on {name}: no opposite world can be built here" in (out / "REPORT.md").read_text()


def test_placeholders_fill_from_the_runs_and_say_when_they_cannot(write_run, tmp_path):
    from harness import catalogue
    from reporting import model, placeholders, runs

    write_run("0001.json", [bench(name="test_x[hashlib]", checks=[check(value=1.8, interval=[1.7, 1.9], n=6)],
                                  figures={"thread_cores": figure(1.8, "cores", interval=[1.7, 1.9], n=6)}),
                            bench(name="test_x[python]", checks=[check(value=1.0)],
                                  figures={"thread_cores": figure(1.0, "cores")})])
    loaded = runs.load_runs(sorted((tmp_path / "runs").rglob("*.json")), None)
    view = next(v for v in model.views(catalogue.load(), runs.columns(loaded)) if v.id == "TH4")
    text = ("threads kept {range:thread_cores} busy, hashlib {figure:thread_cores@hashlib}; judged against "
            "{threshold:thread_cores}; stack {fact:8 MiB|glibc}; {range:nothing_of_the_kind}; {env:cores} cores")
    out = placeholders.render(text, view)
    assert "1–1.8 cores" in out and "1.8 cores (95% interval 1.7–1.9 cores)" in out and "at most 1.3 cores" not in out
    assert "1.3 cores" in out and "8 MiB [glibc]" in out and "n/m" in out and "2 cores" in out
    assert placeholders.unresolved(text, view) == ["{range:nothing_of_the_kind}"]
    assert placeholders.bare_digits("held 1.5x on TH4 {range:x}") == ["1.5x"]
    assert placeholders.bare_digits("PEP 684 and IO3 name things {fact:64 MiB|glibc}") == []
    assert placeholders.malformed("{rang:x} {range:y}") == ["{rang:x}"]


def test_a_claim_with_two_readings_gets_a_verdict_per_reading_on_its_page_and_in_the_matrix(write_run, tmp_path):
    import dataclasses

    from harness import catalogue
    from reporting import model, pages, runs

    claims = catalogue.load()
    claims["TH4"] = dataclasses.replace(claims["TH4"], readings={"pure Python": ["test_a"], "C code": ["test_b"]})
    write_run("0001.json", [bench(name="test_a[2]", verdict="holds"),
                            bench(name="test_b[2]", verdict="refuted", checks=[check(passed=False)])])
    loaded = runs.load_runs(sorted((tmp_path / "runs").rglob("*.json")), None)
    view = next(v for v in model.views(claims, runs.columns(loaded)) if v.id == "TH4")
    assert model.reading_verdicts(view.cells[0]) == [("pure Python", "holds"), ("C code", "refuted")]
    assert view.cells[0].verdict == "refuted"
    rows, _ = pages.matrix_rows([view], pages.Links("claims/", "md", "", None), pages.Form(title=True))
    assert rows[1][:3] == ["↳ TH4", "reading: pure Python", "holds"] and rows[2][2] == "refuted"


def test_units_table_reads_each_cell_from_a_claims_run_and_links_to_it(write_run, tmp_path):
    write_run("0001.json", [bench(name="test_cpu_bound_threads_do_not_scale[2-workers]",
                                  checks=[check(value=1.01, interval=[0.99, 1.02], n=6)],
                                  figures={"thread_cores": figure(1.01, "cores", interval=[0.99, 1.02], n=6)})])
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n<!-- units:begin -->\n<!-- units:end -->\n\n" + README)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "runs"), "--out", str(out), "--readme", str(readme), "--include-stale"]) == 0
    block = readme.read_text().split("<!-- units:begin -->")[1].split("<!-- units:end -->")[0]
    thread = next(line for line in block.splitlines() if line.startswith("| thread |"))
    assert "[1.01 cores][u-TH4]" in thread and "n/m" in thread
    assert re.search(r"^\[u-TH4\]: \S*claims/TH4\.md#env-", block, flags=re.M)
    page = next((out / "units").glob("*.md")).read_text()
    assert "[1.01 cores (0.99–1.02 cores)][u-TH4]" in page and "thread, creation: n/m" in page
    assert "process (fork), counter needs a lock: n/a, cannot apply" in page
    cells = pd.read_csv(out / "units.csv", keep_default_na=False)
    row = cells[(cells.unit == "thread") & (cells.axis == "cores, 2 units of pure-Python work")].iloc[0]
    assert row.claim == "TH4" and row.figure == "thread_cores" and float(row.value) == 1.01


# --- scaling curves: full-scale runs are columns of their own ---------------------------------------
def test_a_full_scale_run_draws_scaling_curves_and_never_replaces_the_quick_verdict(write_run, tmp_path):
    write_run("0001.json", [bench(verdict="holds")], when="2026-01-01T00:00:00")
    points = []
    for k, cores in ((2, 1.9), (4, 1.95)):
        figs = {"thread_cores": figure(cores, "cores", interval=[cores - 0.05, cores + 0.02], n=6),
                "thread_speedup": figure(1.8, "x", interval=[1.6, 1.9], n=6),
                "process_cores": figure(1.97, "cores"), "process_speedup": figure(1.9, "x"),
                "sequential_cores": figure(0.99, "cores")}
        points.append(bench(name=f"test_cpu_bound_threads_do_not_scale[{k}-workers]", params={"workers": k},
                            verdict="refuted", checks=[check(value=cores, passed=False)], figures=figs))
    write_run("0001.json", points, root="runs/full-scale", when="2026-01-02T00:00:00", scale="full")
    loaded = runs.load_runs([tmp_path / "runs"], None)
    assert sorted(r.scale for r in loaded) == ["full", "quick"] and {r.origin for r in loaded} == {""}
    assert len(runs.columns(loaded)) == 2
    status, out = build_report(tmp_path)
    assert status == 0
    table = verdicts(out)
    assert len(table) == len(table.id.unique())  # one verdict column: the quick one
    assert table.set_index("id").loc["TH4", "verdict"] == "holds"  # the newer full-scale run replaced nothing
    page = (out / "scaling.md").read_text()
    assert "full scale" in page and "| 4 (oversubscribed) | 2 |" in page
    assert "1.95 cores (1.9–1.97 cores)" in page and "k = 2 refuted, k = 4 refuted" in page
    assert "interpreters: not measured here" in page
    plot = re.search(r"\(site/(plots/scaling-env-[a-z0-9-]+\.png)\)", page)
    assert plot and (out / "site" / plot.group(1)).read_bytes().startswith(b"\x89PNG")
    curve = pd.read_csv(out / "scaling.csv")
    assert set(curve.k) == {2, 4} and set(curve.ideal) == {2} and set(curve.unit) == {"threads", "processes"}


def test_scaling_counts_run_up_to_the_cpus_then_oversubscribe_once():
    from harness.scale import MAX_UNITS, parallel_counts
    assert parallel_counts(2) == (2, 4)
    assert parallel_counts(6) == (2, 4, 6, 12)
    assert parallel_counts(16) == (2, 4, 8, 16, 32)
    assert max(parallel_counts(1024)) == MAX_UNITS


def test_a_whole_full_scale_run_is_a_verdict_column_of_its_own(write_run, tmp_path):
    write_run("0001.json", [bench(verdict="holds")])
    write_run("0001.json", [bench(verdict="refuted", checks=[check(passed=False)]),
                            bench(claim="PR1", name="test_child_process_writes_are_invisible_to_parent[fork]",
                                  params={"start_method": "fork"})],
              root="runs/full-scale", when="2026-01-02T00:00:00", scale="full")
    status, out = build_report(tmp_path)
    assert status == 0
    th4 = verdicts(out)[lambda t: t.id == "TH4"].set_index("environment").verdict
    assert len(th4) == 2 and sorted(th4) == ["holds", "refuted"], th4
    assert th4[~th4.index.str.endswith("@full")].item() == "holds" and th4[th4.index.str.endswith("@full")].item() \
        == "refuted"
