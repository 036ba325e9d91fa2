"""The tools behind `make stability`, `make matrix` and the optional installs, on made-up inputs.

Fast and deterministic: no benchmark runs, no network, no installs.
"""
from __future__ import annotations

import json
import sys

import pytest

from harness import catalogue
from tests import conftest
from tests.conftest import bench
from tools import free_threaded, install_optional, interpreters, stability


def part(claim, verdict, support=True):
    return bench(claim=claim, verdict=verdict, measured_support=support)


def run_json(parts, skipped=(), selected=None):
    return conftest.run_json(parts, not_measured=[conftest.skipped(claim=c) for c in skipped], selected=selected)


def test_a_run_decides_each_claim_as_the_run_itself_did():
    states = stability.run_states(run_json(
        [part("TH4", "holds"), part("TH4", "holds-with-caveat", support=False), part("IO1", "undecided")],
        skipped=["CO1"], selected=["TH4", "IO1", "CO1", "PR3"]))
    assert states == {"TH4": "holds-with-caveat", "IO1": "undecided", "CO1": catalogue.NOT_MEASURED,
                      "PR3": stability.NO_RESULT}


def test_a_malformed_record_is_refused_naming_the_field():
    bad = part("TH4", "holds")
    del bad["extra_info"]["measured_support"]
    with pytest.raises(Exception, match="measured_support: missing"):
        stability.run_states(run_json([bad]))


def test_a_skipped_part_beside_a_decided_one_leaves_the_claim_decided():
    assert stability.run_states(run_json([part("TH4", "refuted")], skipped=["TH4"]))["TH4"] == "refuted"


@pytest.mark.parametrize("verdicts, expected", [
    (["holds", "holds", "holds"], 0),
    (["holds", "refuted", "holds"], 2),
    (["holds", "undecided", "refuted"], 1),  # undecided in between neither makes nor hides a flip
    (["holds", catalogue.NOT_MEASURED, "holds"], 0),
    (["undecided", "undecided"], 0),
    (["holds", "", "holds-with-caveat"], 1),  # a run that did not select the claim is skipped over
])
def test_a_flip_is_a_change_between_two_decided_verdicts(verdicts, expected):
    assert stability.flips(verdicts) == expected


def write_run(out, name, data, load=0):
    slug_dir = out / name / "CPython-3.11.7-x86_64-2cpu-abcdef" / "Linux-CPython-3.11-64bit"
    slug_dir.mkdir(parents=True)
    (slug_dir / "0001_run.json").write_text(json.dumps(data))
    (out / name / "run.json").write_text(json.dumps({"load": load, "exit_code": 0, "seconds": 1, "started": "t"}))


def test_the_tables_count_flips_undecided_and_not_measured(tmp_path):
    out = tmp_path / "stability"
    write_run(out, "run-001-load0", run_json([part("TH4", "holds"), part("IO1", "holds")]))
    write_run(out, "run-002-load1", run_json([part("TH4", "refuted"), part("IO1", "undecided")], skipped=["CO1"]),
              load=1)
    md, csv_path = tmp_path / "stability.md", tmp_path / "stability.csv"
    assert stability.write_tables(out, md, csv_path) == 1
    rows = {line.split(",")[0]: line.split(",") for line in csv_path.read_text().splitlines()}
    assert rows["claim"] == ["claim", "run-001-load0", "run-002-load1", "flips", "undecided", "not_measured",
                             "no_result"]
    assert rows["TH4"] == ["TH4", "holds", "refuted", "1", "0", "0", "0"]
    assert rows["IO1"] == ["IO1", "holds", "undecided", "0", "1", "0", "0"]
    assert rows["CO1"] == ["CO1", "", catalogue.NOT_MEASURED, "0", "0", "1", "0"]
    assert "**1 flip**" in md.read_text()
    run_lines = [line for line in md.read_text().splitlines() if line.startswith("| 2 (run-002")]
    assert run_lines and run_lines[0].endswith("| 3 | 1 (33%) | 1 |"), run_lines  # parts, undecided, not measured


def test_optional_pins_name_their_modules_and_pip_errors_their_reason():
    assert install_optional.module_of("uvloop==0.23.0") == "uvloop"
    assert install_optional.module_of("Some-Package==1.0") == "some_package"
    out = ("Collecting x\nERROR: Could not find a version that satisfies the requirement liburing==1\n"
           "ERROR: No matching distribution found for liburing==1\n")
    assert install_optional.pip_failure(out) == "No matching distribution found for liburing==1"


def test_the_running_interpreter_passes_its_own_probe():
    info = interpreters.probe(sys.executable)
    assert info["version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")


def test_an_interpreter_that_does_not_run_is_left_out_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="does not run"):
        interpreters.probe(str(tmp_path / "no-such-python"))


def test_the_debian_archive_is_read_from_either_apt_sources_format_never_the_security_one():
    deb822 = ("Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
              "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    one_line = "deb [signed-by=/k.gpg] http://archive.example/debian bookworm main\n"
    assert free_threaded.debian_archive_uri([deb822]) == "http://mirror.example/debian"
    assert free_threaded.debian_archive_uri([one_line]) == "http://archive.example/debian"
    assert free_threaded.debian_archive_uri(["deb https://packages.example/apt cloud-sdk main\n"]) is None


def test_two_builds_of_one_version_get_session_ids_of_their_own():
    ft = {"version": "3.13.5", "free_threaded": True}
    assert interpreters.session_id(ft, set()) == "3.13.5t"
    assert interpreters.session_id(ft, {"3.13.5t"}) == "3.13.5t-2"
    assert interpreters.session_id({"version": "3.13.5", "free_threaded": False}, {"3.13.5t"}) == "3.13.5"
