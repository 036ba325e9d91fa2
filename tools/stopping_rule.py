#!/usr/bin/env python3
"""The stopping rule's table and its error rates, by simulation through the suite's own code.

    python tools/stopping_rule.py                                # the tables, as Markdown
    python tools/stopping_rule.py --out results/stopping_rule.md # the page the README links

The simulation drives harness.stats.sample_rounds (with a ``done`` that asks harness.stats.decided,
as the experiments do) and decides the final samples with harness.stats.decide, so it measures
the rule the experiments run, not a model of it. tests/test_stopping_rule.py asserts its bounds.

Scenarios, each with the figure's true median exactly on the threshold unless said:
- independent rounds (log-normal noise: the rule sees only which side a sample falls, so any
  continuous noise gives the same rate);
- paired ratios with bursts shared within a round: each round's two sides share one
  multiplicative burst, itself AR(1) across rounds (phi 0.5), so the ratio cancels it;
- an absolute figure under the same AR(1) bursts (reported, not asserted: the interval
  assumes independent rounds);
- an absolute figure whose median drifts across the rounds (reported, not asserted);
- power: the true median 10% and 25% off the threshold, on the claim's side.
"""
from __future__ import annotations

import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import stats  # noqa: E402

SETTINGS = {"quick": 12, "full": 30}  # max_rounds of a sampled figure at each scale
TRIALS = 20_000
SEED = 20261202
SIGMA = 0.2  # log-normal spread of one round's figure
PHI = 0.5  # AR(1) coefficient of the bursts
BURST_SIGMA = 0.3
DRIFT = 0.2  # the median moves by this fraction of the threshold over max_rounds rounds
THRESHOLD = 1.0


def run_trial(rng: random.Random, max_rounds: int, sample) -> tuple[bool | None, int]:
    """One figure sampled as an experiment samples it; (its decision, rounds used)."""
    state = {"i": 0, "burst": 0.0}

    def one_round():
        state["i"] += 1
        state["burst"] = PHI * state["burst"] + math.sqrt(1 - PHI ** 2) * rng.gauss(0, BURST_SIGMA)
        return sample(rng, state)

    rounds = stats.sample_rounds(one_round, max_rounds=max_rounds,
                                 done=lambda rs: stats.decided(rs, ">", THRESHOLD))
    return stats.decide(rounds, ">", THRESHOLD)[0], len(rounds)


def scenarios(max_rounds: int) -> dict:
    noise = lambda rng: math.exp(rng.gauss(0, SIGMA))  # noqa: E731
    return {
        "independent rounds": lambda rng, s: THRESHOLD * noise(rng),
        "paired ratio, bursts shared in a round": lambda rng, s: (
            (2.0 * math.exp(s["burst"]) * noise(rng)) / (2.0 * math.exp(s["burst"]) * noise(rng)) * THRESHOLD),
        "absolute figure, bursts across rounds": lambda rng, s: THRESHOLD * math.exp(s["burst"]) * noise(rng),
        "absolute figure, slow drift": lambda rng, s: THRESHOLD * (1 + DRIFT * (s["i"] / max_rounds - 0.5))
        * noise(rng),
        "power, 10% off the threshold": lambda rng, s: 1.10 * THRESHOLD * noise(rng),
        "power, 25% off the threshold": lambda rng, s: 1.25 * THRESHOLD * noise(rng),
    }


ASSERTED = ("independent rounds", "paired ratio, bursts shared in a round")


def rates(max_rounds: int, trials: int = TRIALS, seed: int = SEED) -> dict[str, dict]:
    """Per scenario: the share of trials decided either way, decided the claim's way, and mean rounds."""
    out = {}
    for name, sample in scenarios(max_rounds).items():
        rng = random.Random(f"{seed}-{name}-{max_rounds}")
        decided = right = used = 0
        for _ in range(trials):
            verdict, n = run_trial(rng, max_rounds, sample)
            decided += verdict is not None
            right += verdict is True
            used += n
        out[name] = {"decided": decided / trials, "claims_side": right / trials, "mean_rounds": used / trials}
    return out


def rank_table() -> str:
    rows = ["| look n | rank k | interval | fixed-n rank | cumulative error |", "|---|---|---|---|---|"]
    for n, (k, spent) in stats.sequential_table().items():
        rows.append(f"| {n} | {k} | [x({k}), x({n - k + 1})] | {stats.fixed_rank(n)} | {100 * spent:.2f}% |")
    return "\n".join(rows)


def rate_table(trials: int = TRIALS) -> str:
    found = {scale: rates(n, trials) for scale, n in SETTINGS.items()}
    heads = " | ".join(f"{scale} (max {n})" for scale, n in SETTINGS.items())
    rows = [f"| scenario | {heads} |", "|---|" + "---|" * len(SETTINGS)]
    for name in found["quick"]:
        cells = []
        for scale in SETTINGS:
            r = found[scale][name]
            share = r["claims_side"] if name.startswith("power") else r["decided"]
            cells.append(f"{100 * share:.1f}% in {r['mean_rounds']:.1f} rounds")
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(rows)


def page(trials: int = TRIALS) -> str:
    return "\n".join([
        "# The stopping rule, in numbers",
        "",
        "Made by `python tools/stopping_rule.py --out results/stopping_rule.md` from harness/stats.py's",
        "table and a seeded simulation through the suite's own sampling loop (the rule itself is stated",
        "in harness/stats.py's docstring).",
        "",
        "## Ranks per look",
        "",
        rank_table(),
        "",
        "## Error and power",
        "",
        f"Share of {trials:,} seeded trials decided either way (power rows: decided on the claim's side),",
        f"log-normal noise sigma {SIGMA}, bursts AR(1) phi {PHI}, drift {DRIFT:.0%} of the threshold.",
        "The first two rows are what the 95% promise covers; the absolute-figure rows show why",
        "comparisons are decided from paired rounds.",
        "",
        rate_table(trials),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the page here instead of printing it")
    args = parser.parse_args(argv)
    text = page()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"stopping_rule: wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
