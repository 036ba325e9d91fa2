"""harness.evidence: how checks become verdicts, and what a failed expectation says."""
from __future__ import annotations

import pytest

from harness.catalogue import Claim, combine
from harness.evidence import Check, Evidence, decide, module_settings, summarize

CLAIM = Claim(id="TH4", section="s", where="w", title="t", statement="threads do not scale", expected="holds",
              file="experiments/test_th4_x.py")


def check(role, passed):
    return Check("f", 1.0, "<=", 2.0, "x", role, "", passed)


@pytest.mark.parametrize("checks, verdict", [
    ([check("support", True)], "holds"),
    ([check("support", False)], "refuted"),
    ([check("support", True), check("caveat", True)], "holds-with-caveat"),
    ([check("support", True), check("caveat", False)], "holds"),
    ([check("support", True), check("caveat", True), check("caveat", False)], "holds"),
    ([check("support", False), check("caveat", True)], "refuted"),
    ([check("caveat", True)], "holds-with-caveat"),
    ([check("caveat", False)], "holds"),
    ([check("support", None)], "undecided"),
    ([check("support", False), check("support", None)], "refuted"),  # refuted whatever the open one does
    ([check("support", True), check("caveat", None)], "undecided"),  # holds or holds-with-caveat
    ([check("support", None), check("caveat", False)], "undecided"),
])
def test_verdict_follows_from_checks(checks, verdict):
    assert decide(checks) == verdict


@pytest.mark.parametrize("samples, passed", [
    ([1.0, 1.02, 0.99, 1.01, 1.0, 1.03, 0.98], True),  # the whole interval is below 1.3
    ([1.9, 1.8, 2.0, 1.95, 1.85, 1.9], False),  # the whole interval is above it
    ([1.0, 1.1, 1.2, 1.4, 1.5, 1.6], None),  # it straddles 1.3: undecided, never a guess
])
def test_a_figure_over_rounds_is_decided_by_its_interval(samples, passed):
    ev = Evidence(CLAIM, "part")
    assert ev.support("thread_cores", op="<=", threshold=1.3, unit="cores", samples=samples) is passed
    check = ev.checks[-1]
    assert check.n == len(samples) and check.interval[0] <= check.value <= check.interval[1]
    assert ev.figures["thread_cores"].samples == samples


def test_a_decided_figure_needs_six_samples():
    with pytest.raises(ValueError, match="6 samples"):
        Evidence(CLAIM, "part").support("x", op="<=", threshold=1, samples=[1, 1, 1, 1, 1])


def test_an_undecided_part_is_recorded_and_does_not_fail_its_test():
    ev = Evidence(CLAIM, "part")
    ev.support("thread_cores", op="<=", threshold=1.3, samples=[1.0, 1.1, 1.2, 1.4, 1.5, 1.6])
    bench = FakeBenchmark()
    assert ev.settle(bench) == "undecided"
    assert bench.extra_info["verdict"] == "undecided" and bench.extra_info["measured_support"] is False


def test_no_checks_gives_no_verdict():
    with pytest.raises(ValueError):
        decide([])


def test_claim_verdict_takes_the_strongest_qualifier():
    assert combine([("holds", True), ("holds-with-caveat", True), ("holds", True)]) == "holds-with-caveat"
    assert combine([("holds", True), ("refuted", True)]) == "refuted"
    assert combine([("holds", True), ("undecided", False), ("not-measured", False)]) == "undecided"
    assert combine([("holds", True), ("undecided", True)]) == "undecided"  # the open part could still refute
    assert combine([("refuted", True), ("undecided", True)]) == "refuted"  # nothing open can undo a refutation
    assert combine([("holds", True), ("not-measured", False)]) == "holds"


def test_caveat_only_parts_never_decide_a_claim_alone():
    assert combine([("holds-with-caveat", False)]) == "not-measured"
    assert combine([("holds-with-caveat", False), ("not-measured", False)]) == "not-measured"
    assert combine([("holds-with-caveat", False), ("holds", True)]) == "holds-with-caveat"
    assert combine([("undecided", False), ("holds-with-caveat", False)]) == "undecided"
    assert combine([]) == "not-measured"
    with pytest.raises(ValueError, match="unknown verdict"):
        combine([("maybe", True)])


class FakeBenchmark:
    def __init__(self, ran=True):
        self.stats = object() if ran else None
        self.extra_info = {}


def test_settle_records_evidence_and_accepts_the_expected_verdict():
    ev = Evidence(CLAIM, "part", settings={"N": 3})
    ev.condition(loop="uvloop")
    assert ev.support("speedup", value=1.02, op="<=", threshold=1.25, unit="x") is True
    bench = FakeBenchmark()
    assert ev.settle(bench) == "holds"
    info = bench.extra_info
    assert info["claim"] == "TH4" and info["verdict"] == "holds" and info["conditions"]["loop"] == "uvloop"
    assert info["figures"]["speedup"] == {"value": 1.02, "unit": "x"}
    assert info["measured_support"] is True
    assert info["settings"] == {"N": 3}


def test_settle_fails_naming_the_figure_and_threshold_when_reality_disagrees():
    ev = Evidence(CLAIM, "part")
    ev.support("thread_speedup", value=1.9, op="<=", threshold=1.25, unit="x", why="GIL")
    bench = FakeBenchmark()
    with pytest.raises(AssertionError) as err:
        ev.settle(bench)
    message = str(err.value)
    assert "measured verdict 'refuted', expected 'holds'" in message
    assert "thread_speedup' = 1.9 x, needs <= 1.25 x (failed)" in message
    assert bench.extra_info["verdict"] == "refuted"  # the evidence is saved even when the test fails


def test_settle_refuses_a_benchmark_that_never_ran():
    ev = Evidence(CLAIM, "part")
    ev.support("x", value=1, op="==", threshold=1)
    with pytest.raises(RuntimeError, match="needs a benchmark that has run"):
        ev.settle(FakeBenchmark(ran=False))


def test_unknown_comparison_is_refused():
    with pytest.raises(ValueError, match="unknown comparison"):
        Evidence(CLAIM, "p").support("x", value=1, op="~", threshold=1)


def test_samples_give_median_and_quartiles():
    s = summarize([5, 1, 3, 2, 4])
    assert (s["value"], s["q1"], s["q3"], s["n"], s["min"], s["max"]) == (3, 2, 4, 5, 1, 5)


def test_module_settings_keep_plain_upper_case_constants():
    import types
    mod = types.ModuleType("m")
    mod.ROUNDS, mod.SIZES, mod.lower, mod.FN = 5, (1, 2), 3, print
    assert module_settings(mod) == {"ROUNDS": 5, "SIZES": [1, 2]}


def test_meter_counts_cpu_of_busy_code_and_none_of_sleeping_code():
    import time

    from harness.measure import measure
    from harness.workloads import spin

    busy = measure(spin, 300_000)
    idle = measure(time.sleep, 0.05)
    # CPU time, not CPU/wall: on a loaded machine a busy loop waits for a CPU too, but the CPU it
    # did get is the same, and a sleep gets next to none
    assert busy.cpu > 20 * idle.cpu
    assert idle.cpu < 0.2 * idle.wall


# --- a part's expectation comes from the catalogue alone -------------------------------------------
def _settled(claim, test="test_part[2-workers]", roles=("support",), passed=True) -> tuple[str, str | None]:
    """(what the part expected, the assertion message or None) for checks of these roles."""
    ev = Evidence(claim, test)
    for i, role in enumerate(roles):
        getattr(ev, role)(f"f{i}", value=1 if passed else 3, op="<=", threshold=2)
    try:
        ev.settle(FakeBenchmark())
    except AssertionError as exc:
        return ev.expected, str(exc)
    return ev.expected, None


@pytest.mark.parametrize("expected, roles, part_expects", [
    ("holds", ("support",), "holds"),
    ("holds", ("support", "caveat"), "holds"),
    ("holds-with-caveat", ("support",), "holds"),  # a caveat-free part cannot show the claim's caveat
    ("holds-with-caveat", ("caveat",), "holds-with-caveat"),
    ("holds-with-caveat", ("support", "caveat"), "holds-with-caveat"),
    ("refuted", ("support",), "refuted"),
])
def test_a_part_expects_what_the_rule_derives_from_the_claims_expected(expected, roles, part_expects):
    claim = Claim(id="TH4", section="s", where="w", title="t", statement="s", expected=expected,
                  file="experiments/test_th4_x.py")
    assert _settled(claim, roles=roles)[0] == part_expects


def test_changing_a_claims_expected_in_the_catalogue_changes_what_its_parts_assert(tmp_path):
    from harness import catalogue

    text = (catalogue.CATALOGUE_PATH).read_text()
    before = catalogue.load()["TH1"]
    assert before.expected == "holds"
    changed = tmp_path / "catalogue.toml"
    changed.write_text(text.replace('expected = "holds"\nfile = "experiments/test_th1',
                                    'expected = "refuted"\nfile = "experiments/test_th1', 1))
    after = catalogue.load(changed)["TH1"]
    assert after.expected == "refuted"
    assert _settled(before, "test_thread_writes_are_visible_to_other_threads") == ("holds", None)
    expected, message = _settled(after, "test_thread_writes_are_visible_to_other_threads")
    assert expected == "refuted" and "measured verdict 'holds', expected 'refuted'" in message


def test_the_catalogues_parts_override_the_rule_in_every_environment():
    claim = Claim(id="PR3", section="s", where="w", title="t", statement="s", expected="refuted",
                  file="experiments/test_pr3_x.py", expected_when={"no_gil": "holds"},
                  parts={"test_creation": "holds"})
    assert claim.expected_for_part("test_creation", has_caveat_checks=False) == "holds"
    assert claim.expected_for_part("test_creation", {"no_gil"}, has_caveat_checks=True) == "holds"
    assert claim.expected_for_part("test_switch", has_caveat_checks=False) == "refuted"
    assert _settled(claim, "test_creation[fork]") == ("holds", None)
    one = Claim(id="CO4", section="s", where="w", title="t", statement="s", expected="refuted",
                  file="experiments/test_co4_x.py",
                parts={"test_switch[uvloop-queue]": "holds"})
    assert one.expected_for_part("test_switch[uvloop-queue]", has_caveat_checks=False) == "holds"
    assert one.expected_for_part("test_switch[asyncio-queue]", has_caveat_checks=False) == "refuted"


def test_the_catalogues_parts_name_test_functions_of_the_claims_file():
    import ast
    from pathlib import Path

    from harness import catalogue

    root = Path(catalogue.ROOT)
    for claim in catalogue.load().values():
        if not claim.parts:
            continue
        names = {n.name for n in ast.walk(ast.parse((root / claim.file).read_text())) if isinstance(n, ast.FunctionDef)}
        assert {p.split("[")[0] for p in claim.parts} <= names, f"{claim.id}: parts names no test of {claim.file}"


# --- one check call, and the opposite world recorded beside it ----------------------------------------
def test_check_gives_a_role_and_support_and_caveat_take_keywords_only():
    ev = Evidence(CLAIM, "part")
    assert ev.check("caveat", "x", op="<=", threshold=2, value=1) is True
    assert ev.checks[-1].role == "caveat"
    with pytest.raises(TypeError):
        ev.support("y", 1, "<=", 2)  # op and threshold by position: refused
    with pytest.raises(ValueError, match="unknown role"):
        ev.check("hint", "z", op="<=", threshold=2, value=1)


def test_an_opposite_world_is_judged_by_the_same_op_and_threshold_and_recorded_inside_the_check():
    from harness.evidence import Opposite

    ev = Evidence(CLAIM, "part")
    ev.support("cores", op="<=", threshold=0.05, unit="cores", samples=[0.01] * 6,
               opposite=Opposite("a busy-polling reader", samples=[0.9, 1.0, 0.95, 0.97, 0.99, 1.01]))
    ev.support("lost", op="==", threshold=0, unit="updates", value=0, opposite=Opposite("no lock", value=37))
    from harness.record import to_json

    first, second = (to_json(c.opposite) for c in ev.checks)
    assert first["label"] == "a busy-polling reader" and first["passed"] is False and first["n"] == 6
    assert first["interval"] == [0.9, 1.01] and first["value"] == pytest.approx(0.98)
    assert second == {"label": "no lock", "value": 37, "interval": None, "n": None, "passed": False}
    assert ev.verdict == "holds"  # both opposite worlds landed on the other side: the checks decide
    bench = FakeBenchmark()
    ev.settle(bench)
    assert bench.extra_info["checks"][0]["opposite"]["passed"] is False
    assert "cores_opposite" in bench.extra_info["figures"]
    with pytest.raises(ValueError, match="samples or a value"):
        Opposite("both", samples=[1] * 6, value=1)


@pytest.mark.parametrize("kwargs, shown", [({"value": 3}, True), ({"value": 0}, False),
                                           ({"samples": [3, 4, 5, 3, 4, 5]}, True),
                                           ({"samples": [0, 4, 5, 3, 4, 5]}, False)])
def test_a_control_takes_samples_or_one_value(kwargs, shown):
    ev = Evidence(CLAIM, "part")
    if shown:
        ev.control("room", op=">", threshold=0, unit="x", why="no room", **kwargs)
        assert "room" in ev.figures
    else:
        with pytest.raises(pytest.skip.Exception, match="control room = .* is not clearly > 0 x: no room"):
            ev.control("room", op=">", threshold=0, unit="x", why="no room", **kwargs)
        assert ev.not_measured_reason.startswith("control room")


@pytest.mark.parametrize("unit", ["us", "ms", "ns per descriptor (batched)", "µs", "ms/call"])
def test_times_are_recorded_in_seconds_only(unit):
    ev = Evidence(CLAIM, "part")
    with pytest.raises(ValueError, match="seconds"):
        ev.figure("t", 1.0, unit)
    ev.figure("t", 1e-6, "s per descriptor (batched)")
    ev.figure("rate", 5.0, "msg/s")


def test_a_check_whose_opposite_world_lands_on_the_same_side_is_not_discriminating():
    from harness.evidence import Opposite

    ev = Evidence(CLAIM, "part")
    with pytest.raises(pytest.skip.Exception, match="not discriminating here: cores = 0.01 cores here and 0.02"):
        ev.support("cores", op="<=", threshold=0.05, unit="cores", samples=[0.01] * 6,
                   opposite=Opposite("a starved poller", samples=[0.02] * 6))
    assert ev.checks[-1].opposite.passed is True and ev.not_measured_reason


def test_a_check_waits_for_its_opposite_world_to_decide():
    from harness.evidence import Opposite

    ev = Evidence(CLAIM, "part")
    straddling = [0.01, 0.02, 0.03, 0.07, 0.08, 0.09]
    assert ev.support("cores", op="<=", threshold=0.05, samples=[0.01] * 6,
                      opposite=Opposite("a poller", samples=straddling)) is None
    assert ev.verdict == "undecided"
