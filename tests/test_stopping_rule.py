"""The stopping rule keeps its promise: under the null, a sampled figure is decided at most 5% of the time.

Drives the suite's own sampling loop and decision code (harness.stats.sample_rounds and decide,
through tools/stopping_rule.py) with seeded simulated rounds, at the quick and the full settings.
"""
from __future__ import annotations

import math

import pytest

from harness import stats
from tools import stopping_rule

TRIALS = 10_000


@pytest.mark.parametrize("scale", sorted(stopping_rule.SETTINGS))
@pytest.mark.parametrize("scenario", stopping_rule.ASSERTED)
def test_a_null_figure_is_decided_at_most_5_percent_of_the_time(scale, scenario):
    max_rounds = stopping_rule.SETTINGS[scale]
    sample = stopping_rule.scenarios(max_rounds)[scenario]
    rng = stopping_rule.random.Random(f"test-{scenario}-{scale}")
    decided = sum(stopping_rule.run_trial(rng, max_rounds, sample)[0] is not None for _ in range(TRIALS))
    rate = decided / TRIALS
    se = math.sqrt(0.05 * 0.95 / TRIALS)
    assert rate + 2.33 * se <= 1 - stats.CONFIDENCE, f"{scenario} at {scale}: decided {rate:.2%} of null figures"
    if scenario == "independent rounds":  # the loop matches the exact calculation behind the ranks
        exact = stats.sequential_table()[max_rounds][1]
        assert abs(rate - exact) <= 3 * math.sqrt(exact * (1 - exact) / TRIALS), (rate, exact)


def test_the_ranks_spend_at_most_5_percent_over_every_look():
    table = stats.sequential_table()
    assert list(table) == list(stats.LOOKS)
    spent = [s for _, s in table.values()]
    assert spent == sorted(spent) and spent[-1] <= 1 - stats.CONFIDENCE
    assert table[stats.MIN_SAMPLES] == (1, 2 / 64)  # the first look can only use the range
    for n, (k, _) in table.items():
        assert 1 <= k <= stats.fixed_rank(n)  # never narrower than a fixed-size interval


def test_sequential_sampling_looks_only_at_the_looks():
    asked = []
    stats.sample_rounds(lambda: 1.0, max_rounds=12, done=lambda rs: asked.append(len(rs)) and False)
    assert asked == [6, 8, 10, 12]
    with pytest.raises(ValueError, match="must be looks"):
        stats.sample_rounds(lambda: 1.0, max_rounds=16, done=lambda rs: False)


def test_the_published_page_is_the_scripts_output_for_the_ranks():
    page = (stopping_rule.Path(stopping_rule.__file__).resolve().parent.parent / "results" / "stopping_rule.md")
    assert stopping_rule.rank_table() in page.read_text(encoding="utf-8")


def test_what_correlated_rounds_drift_and_a_real_difference_do_is_reported(capsys):
    """Not asserted: bursts and drift on an absolute figure, and the power 10% and 25% off the threshold."""
    lines = []
    for scale, max_rounds in sorted(stopping_rule.SETTINGS.items()):
        for name, sample in stopping_rule.scenarios(max_rounds).items():
            if name in stopping_rule.ASSERTED:
                continue
            rng = stopping_rule.random.Random(f"report-{name}-{scale}")
            found = [stopping_rule.run_trial(rng, max_rounds, sample)[0] for _ in range(1_000)]
            share = found.count(True) if name.startswith("power") else sum(v is not None for v in found)
            lines.append(f"stopping rule, {scale}: {name}: {share / len(found):.1%}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert len(lines) == 8
