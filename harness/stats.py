"""Statistics the suite decides with: the median, its distribution-free interval, summaries.

Why an order-statistic interval for the median: per-round figures on a shared machine are
skewed (a neighbour's burst makes a few rounds slow, never fast), so neither a normal
approximation nor a mean fits them. The interval [x_(k), x_(n-k+1)] covers the true median
with a probability given by the binomial distribution alone, whatever the figures'
distribution (scipy.stats.quantile_test computes exactly that). With n = 6 it is the range
of the samples at 96.9% coverage; below 6 samples no 95% interval exists, which is why a
decided figure needs at least MIN_SAMPLES.
"""
from __future__ import annotations

import statistics

CONFIDENCE = 0.95
MIN_SAMPLES = 6  # the smallest n with a distribution-free 95% interval for the median


def median(values) -> float:
    return statistics.median(list(values))


def median_interval(samples, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Distribution-free confidence interval for the median of `samples` (order statistics)."""
    from scipy import stats  # imported here: most of the suite never needs scipy

    values = [float(v) for v in samples]
    if len(values) < MIN_SAMPLES:
        raise ValueError(f"an interval for the median needs at least {MIN_SAMPLES} samples; got {len(values)}")
    ci = stats.quantile_test(values, q=statistics.median(values), p=0.5).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


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

    After each round past the minimum, done(results) may end the sampling early: an
    experiment passes a test that its deciding figure's interval has cleared its threshold
    (``decided``), so noisy machines get more rounds and quiet ones finish sooner.
    """
    if not 0 < min_rounds <= max_rounds:
        raise ValueError(f"need 0 < min_rounds <= max_rounds, got {min_rounds}, {max_rounds}")
    results = []
    while len(results) < max_rounds:
        results.append(one_round())
        if len(results) >= min_rounds and done is not None and done(results):
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
