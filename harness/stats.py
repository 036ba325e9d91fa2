"""Statistics the suite decides with: the median's interval, the stopping rule, summaries.

Why an order-statistic interval for the median: per-round figures on a shared machine are
skewed (a neighbour's burst makes a few rounds slow, never fast), so neither a normal
approximation nor a mean fits them. The interval [x_(k), x_(n-k+1)] covers the true median
with a probability that the binomial distribution alone gives, whatever the figures'
distribution (the sign test's duality; e.g. Conover, *Practical Nonparametric Statistics*,
3rd ed., section 3.2).

The stopping rule (sample_rounds with ``done``): an experiment looks at its figures only at
the fixed sample sizes LOOKS, and stops at the first look where its deciding intervals clear
their thresholds. Looking repeatedly spends the error more than once, so each look uses its
own rank from a table computed once, by exact calculation, for the whole schedule: take a
figure whose true median sits on the threshold; each sample then falls on either side with
probability 1/2, whatever the noise, and a dynamic programme over that walk gives the chance
that some look's interval excludes the median. The ranks spend the error as in a group-
sequential design with an alpha-spending function (Lan and DeMets, "Discrete sequential
boundaries for clinical trials", Biometrika 70(3), 1983): the first look, n = 6, can only use
the range [x_(1), x_(6)] and spends 2/64 = 3.125%; every later look may raise the cumulative
error linearly in its index, up to CONFIDENCE's 5% at the last look. Whatever look a run
stops at, the chance that any of its looks decided a figure whose median is on the threshold
is at most 5%. (Intervals of a fixed-size sample, which never stopped early, use the plain
rank for their n; a fixed n that is also a look gets the sequential rank, which is wider and
so still valid.)

What MIN_SAMPLES means here: the first look. Below 6 samples no 95% interval exists at all.
What the rule costs: at a look after the first, the interval is wider than a fixed-size one
(n = 12: [x_(2), x_(11)] instead of [x_(3), x_(10)]; `python tools/stopping_rule.py` prints
the table, the simulated error and the power), so a figure near its threshold takes a few
more rounds to decide. Rounds must be independent for this: comparisons are decided from
per-round paired ratios of interleaved rounds, where a burst shared by both sides cancels;
an absolute figure's interval can be optimistic when bursts span several rounds.
"""
from __future__ import annotations

import bisect
import statistics
from fractions import Fraction
from functools import cache
from math import comb

CONFIDENCE = 0.95
MIN_SAMPLES = 6  # the first look: the smallest n with a distribution-free 95% interval for the median
# The sample sizes at which a sequentially sampled figure may be looked at (sample_rounds' done).
LOOKS = (6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200)


def median(values) -> float:
    return statistics.median(list(values))


def _tail(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) <= k - 1): the chance that fewer than k samples fall below the median."""
    return sum(comb(n, i) for i in range(k)) / 2 ** n


@cache
def fixed_rank(n: int, confidence: float = CONFIDENCE) -> int:
    """The largest k whose [x_(k), x_(n-k+1)] covers the median of n samples with `confidence` (0 if none).

    Exact integer arithmetic: 2 * P(Binomial(n, 1/2) <= k - 1) <= 1 - confidence.
    """
    alpha = Fraction(round((1 - confidence) * 10**9), 10**9)
    total, below, term, k = 2 ** n, 0, 1, 0  # term: C(n, k); below: C(n, 0) + ... + C(n, k - 1)
    while k + 1 <= n // 2:
        below += term
        if 2 * below * alpha.denominator > alpha.numerator * total:
            break
        term = term * (n - k) // (k + 1)
        k += 1
    return k


@cache
def sequential_table(looks: tuple[int, ...] = LOOKS, confidence: float = CONFIDENCE) -> dict[int, tuple[int, float]]:
    """Per look n: (its rank k, the cumulative chance, under a median on the threshold, that some look so far
    decided), computed by a dynamic programme over the count of samples below the threshold."""
    alpha = 1 - confidence
    mass = {0: 1.0}  # count below -> probability, over the walks not yet decided
    seen, spent, first, table = 0, 0.0, None, {}
    for j, n in enumerate(looks):
        step = n - seen
        grown: dict[int, float] = {}
        for below, p in mass.items():
            for x in range(step + 1):
                grown[below + x] = grown.get(below + x, 0.0) + p * comb(step, x) / 2 ** step
        mass, seen = grown, n
        allowed = alpha if first is None else first + (alpha - first) * j / (len(looks) - 1)
        rank, cost = 0, 0.0
        for k in range(1, n // 2 + 1):
            err = sum(p for below, p in mass.items() if below <= k - 1 or below >= n - k + 1)
            if spent + err > allowed + 1e-15:
                break
            rank, cost = k, err
        if rank:
            mass = {b: p for b, p in mass.items() if rank - 1 < b < n - rank + 1}
        spent += cost
        first = spent if first is None else first
        table[n] = (rank, spent)
    return table


def rank_for(n: int) -> tuple[int, int, float]:
    """(rank k, looks up to n, the level the interval keeps) for an interval of n samples."""
    table = sequential_table()
    if n in table:
        k, spent = table[n]
        return k, LOOKS.index(n) + 1, 1 - spent
    k = fixed_rank(n)
    return k, 1, 1 - 2 * _tail(n, k)


def median_interval(samples) -> tuple[float, float]:
    """Distribution-free confidence interval for the median of `samples` (order statistics; see above)."""
    values = sorted(float(v) for v in samples)
    n = len(values)
    if n < MIN_SAMPLES:
        raise ValueError(f"an interval for the median needs at least {MIN_SAMPLES} samples; got {n}")
    k = rank_for(n)[0]
    return values[k - 1], values[n - k]


def decide(samples, op: str, threshold) -> tuple[bool | None, tuple[float, float]]:
    """Whether the median of `samples` is `op` `threshold`, judged by its interval.

    True when the whole interval lies on the claim's side, False when it lies wholly on the
    other side, None (undecided) when it straddles the threshold. Returns the interval too.
    """
    lo, hi = median_interval(samples)
    if op in ("<", "<="):
        near, far = hi, lo
    elif op in (">", ">="):
        near, far = lo, hi
    else:
        raise ValueError(f"an interval decides < <= > >=, not {op!r}")
    holds = (lambda a: a < threshold) if op == "<" else (lambda a: a <= threshold) if op == "<=" else \
        (lambda a: a > threshold) if op == ">" else (lambda a: a >= threshold)
    return (True if holds(near) else False if not holds(far) else None), (lo, hi)


def decided(samples, op: str, threshold) -> bool:
    """True once `samples` settle the check either way (for sampling until decided)."""
    return len(samples) >= MIN_SAMPLES and decide(samples, op, threshold)[0] is not None


def sample_rounds(one_round, *, max_rounds: int, min_rounds: int = MIN_SAMPLES, done=None) -> list:
    """Call one_round() at least `min_rounds` and at most `max_rounds` times; return its results.

    With `done`, sampling is sequential: done(results) is asked only at the sample sizes in
    LOOKS (the stopping rule above), and ends the sampling when it returns true; an experiment
    passes a test that its deciding figures' intervals have cleared their thresholds (``decided``),
    so noisy machines get more rounds and quiet ones finish sooner. `max_rounds` must then be a
    look, so that a run that never stops early also ends on one.
    """
    if not 0 < min_rounds <= max_rounds:
        raise ValueError(f"need 0 < min_rounds <= max_rounds, got {min_rounds}, {max_rounds}")
    if done is not None and (max_rounds not in LOOKS or min_rounds not in LOOKS):
        below = LOOKS[max(bisect.bisect_right(LOOKS, max_rounds) - 1, 0)]
        raise ValueError(f"sequential sampling looks only at {LOOKS}: min_rounds {min_rounds} and max_rounds "
                         f"{max_rounds} must be looks (e.g. max_rounds={below})")
    results = []
    while len(results) < max_rounds:
        results.append(one_round())
        n = len(results)
        if n >= min_rounds and done is not None and n in LOOKS and done(results):
            break
    return results


def summarize(samples) -> dict:
    """Median with quartiles, min, max and count: the spread the report shows beside a figure."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples")
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"value": statistics.median(values), "q1": q1, "q3": q3, "min": values[0], "max": values[-1],
            "n": len(values)}


def fit_line(xs, ys) -> tuple[float, float]:
    """Least-squares slope through the points, and r²."""
    from scipy import stats

    result = stats.linregress(xs, ys)
    return float(result.slope), float(result.rvalue ** 2)
