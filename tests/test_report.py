"""report.py: the tables it builds from runs, and how it refuses bad input."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

import report
from tests.conftest import bench

ROOT = Path(__file__).resolve().parent.parent


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_catalogued_claim_appears_and_unmeasured_ones_say_so(write_run, tmp_path):
    write_run("0001.json", [bench()])
    report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "REPORT.md").read_text()
    rows = read_csv(tmp_path / "out" / "verdicts.csv")
    assert len(rows) == 28
    by_id = {r["id"]: r for r in rows}
    assert by_id["TH4"]["verdict"] == "holds (catalogue expects holds-with-caveat)"
    assert by_id["EX1"]["verdict"] == "no experiment yet"
    assert by_id["CO6"]["verdict"] == "not-testable"
    assert "opinion" in by_id["CO6"]["deciding figures"]
    assert "## TH4" in text and "speedup = 1 x (<= 1.25 x ✓)" in text


def test_claim_verdict_combines_its_parts(write_run, tmp_path):
    write_run("0001.json", [bench(verdict="holds"), bench(name="test_y[hashlib]", verdict="holds-with-caveat",
                                                          params={"work": "hashlib"})])
    results = report.build([tmp_path / "runs"], tmp_path / "out")
    assert results["TH4"].verdict == "holds-with-caveat"
    table = (tmp_path / "out" / "REPORT.md").read_text()
    assert "| workers |" in table.replace("  ", " ") or "workers" in table
    assert "hashlib" in table


def test_newest_run_wins_and_disagreeing_runs_are_counted(write_run, tmp_path):
    write_run("0001.json", [bench(verdict="refuted")], when="2026-01-01T00:00:00")
    write_run("0002.json", [bench(verdict="holds")], when="2026-01-02T00:00:00")
    write_run("0003.json", [bench(verdict="holds")], when="2026-01-03T00:00:00")
    results = report.build([tmp_path / "runs"], tmp_path / "out")
    assert results["TH4"].verdict == "holds"
    assert (results["TH4"].runs_agreeing, results["TH4"].runs_measuring) == (2, 3)


def test_table_axes_come_from_params(write_run, tmp_path):
    parts = [bench(name=f"test_z[{n}]", params={"n_fds": n, "selector": "poll"}) for n in (10, 1000)]
    write_run("0001.json", parts)
    report.build([tmp_path / "runs"], tmp_path / "out")
    text = (tmp_path / "out" / "REPORT.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| test") and "n_fds" in line)
    assert "selector" in header


def test_figures_csv_has_one_row_per_figure(write_run, tmp_path):
    figures = {"a": {"value": 1, "unit": "B"}, "b": {"value": 2.5, "unit": "s", "q1": 2, "q3": 3, "n": 3}}
    write_run("0001.json", [bench(figures=figures)])
    report.build([tmp_path / "runs"], tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "figures.csv")
    assert [(r["figure"], r["unit"]) for r in rows] == [("a", "B"), ("b", "s")]


@pytest.mark.parametrize("value, unit, text", [
    (0.000_002_5, "s", "2.5 µs"), (0.25, "s", "250 ms"), (3 << 20, "B", "3 MiB"), (1234, "", "1,234"),
    (0.123456, "x", "0.123 x"), (True, "", "True"),
])
def test_values_are_formatted_for_people(value, unit, text):
    assert report.fmt_value(value, unit) == text


BAD_INPUTS = {
    "truncated": lambda p: p.write_text('{"benchmarks": [{"name": "x", '),
    "foreign": lambda p: p.write_text('{"hello": "world"}'),
    "binary": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"),
    "missing-evidence": lambda p: p.write_text('{"machine_info": {}, "benchmarks": [{"name": "x", "stats": {}, '
                                               '"extra_info": {"claim": "TH4"}}]}'),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_run_file_gets_one_line_and_status_2_and_changes_nothing(tmp_path, kind):
    bad = tmp_path / "bad.json"
    BAD_INPUTS[kind](bad)
    out = tmp_path / "out"
    out.mkdir()
    (out / "REPORT.md").write_text("earlier report")
    proc = subprocess.run([sys.executable, str(ROOT / "report.py"), str(bad), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in proc.stderr
    assert (out / "REPORT.md").read_text() == "earlier report"
    assert sorted(p.name for p in out.iterdir()) == ["REPORT.md"]


@pytest.mark.parametrize("kind", ["missing", "empty-dir"])
def test_missing_path_or_empty_dir_is_refused(tmp_path, kind, capsys):
    target = tmp_path / "nothing"
    if kind == "empty-dir":
        target.mkdir()
    assert report.main([str(target), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0]
    assert not (tmp_path / "out").exists()


def test_runs_without_any_claim_are_refused(write_run, tmp_path, capsys):
    plain = bench()
    plain["extra_info"] = {}
    write_run("0001.json", [plain])
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    assert "no benchmark" in capsys.readouterr().err


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "x.md"
    report.write_atomic(target, "one")
    report.write_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.md"]


def test_a_numeric_axis_with_three_values_gets_a_plot(write_run, tmp_path):
    parts = [bench(name=f"test_z[{sel}-{n}]", params={"selector": sel, "n_fds": n}, group="IO7 wait cost")
             for sel in ("poll", "epoll") for n in (10, 100, 1000)]
    write_run("0001.json", parts)
    report.build([tmp_path / "runs"], tmp_path / "out")
    plots = list((tmp_path / "out" / "plots").glob("*.png"))
    assert [p.name for p in plots] == ["TH4-io7-wait-cost.png"]
    assert plots[0].read_bytes().startswith(b"\x89PNG")
    assert "![IO7 wait cost](plots/TH4-io7-wait-cost.png)" in (tmp_path / "out" / "REPORT.md").read_text()


def test_readme_block_gets_the_verdict_table_and_nothing_else_changes(write_run, tmp_path):
    write_run("0001.json", [bench()])
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- verdicts:begin -->\nold\n<!-- verdicts:end -->\noutro\n")
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- verdicts:begin -->\n| ID") and text.endswith("<!-- verdicts:end -->\noutro\n")
    assert "\nold\n" not in text and "| TH4 " in text


def test_readme_without_the_block_is_refused_before_anything_is_written(write_run, tmp_path, capsys):
    write_run("0001.json", [bench()])
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--readme", str(readme)]) == 2
    assert "verdicts:begin" in capsys.readouterr().err
    assert readme.read_text() == "no markers here\n" and not (tmp_path / "out").exists()
