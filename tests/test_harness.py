"""The harness's small pieces: sampling until decided, replaying rounds, probes, the environment key."""
from __future__ import annotations

import socket

import pytest

from harness import environment, probes, stats, timing


def test_sampling_stops_once_the_interval_clears_and_never_passes_its_bound():
    values = iter([1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0])
    got = stats.sample_rounds(lambda: next(values), min_rounds=6, max_rounds=8,
                               done=lambda xs: stats.decided(xs, "<=", 1.5))
    assert len(got) == 6  # decided at the minimum: well below the threshold
    straddling = iter([1.0, 2.0] * 10)
    got = stats.sample_rounds(lambda: next(straddling), min_rounds=6, max_rounds=10,
                               done=lambda xs: stats.decided(xs, "<=", 1.5))
    assert len(got) == 10  # never decided: stopped at the stated bound
    with pytest.raises(ValueError):
        stats.sample_rounds(lambda: 1, min_rounds=0, max_rounds=3)


def test_replay_hands_measured_rounds_to_pytest_benchmark(benchmark):
    timing.replay(benchmark, [0.2, 0.4, 0.6], units=2)
    assert benchmark.stats.stats.data == pytest.approx([0.1, 0.2, 0.3])


def test_the_median_interval_is_distribution_free_and_needs_six_samples():
    assert stats.median_interval([5, 1, 3, 2, 4, 6]) == (1.0, 6.0)  # n=6: the range, 96.9% coverage
    lo, hi = stats.median_interval(range(99))  # not a look: the plain 95% rank
    assert 38 <= lo < 49 < hi <= 60
    seq_lo, seq_hi = stats.median_interval(range(100))  # a look: the sequential rank, wider
    assert seq_lo < lo and seq_hi > hi
    with pytest.raises(ValueError, match="6 samples"):
        stats.median_interval([1, 2, 3, 4, 5])


def test_queued_bytes_are_read_from_the_kernel():
    a, b = socket.socketpair()
    with a, b:
        assert probes.bytes_queued(b) == 0
        a.sendall(b"x" * 100)
        assert probes.bytes_queued(b) == 100
        b.recv(100)
        assert probes.bytes_queued(b.fileno()) == 0


def test_schedstat_counts_this_threads_cpu():
    on_cpu, waiting, slices = probes.schedstat()
    assert on_cpu > 0 and waiting >= 0 and slices >= 1


@pytest.mark.parametrize("change, differs", [({"python": "3.13.5"}, True), ({"free_threaded": True}, True),
                                             ({"gil": "re-enabled", "free_threaded": True}, True),
                                             ({"cpus_available": 1}, False),
                                             ({"kernel": "6.18.44-fc-v1098"}, False),
                                             ({"kernel": "6.19.1-fc-v1098"}, True),
                                             ({"cpu_model": "Other CPU"}, True)])
def test_the_environment_slug_keeps_environments_apart(change, differs):
    env = environment.key()
    assert (environment.slug(env) != environment.slug({**env, **change})) is differs


@pytest.mark.parametrize("release, upstream", [("6.18.44-fc-v595", "6.18.44"), ("6.1.0-28-amd64", "6.1.0"),
                                               ("5.15.0-91-generic", "5.15.0"), ("6.12.9+deb13-amd64", "6.12.9"),
                                               ("6.8", "6.8"), ("weird", "weird")])
def test_a_kernel_release_loses_its_build_suffix(release, upstream):
    assert environment.kernel_release(release) == upstream


def test_two_kernels_differing_only_in_the_build_suffix_are_one_environment():
    env = {**environment.key(), "kernel": "6.18.44-fc-v595"}
    assert environment.slug(env) == environment.slug({**env, "kernel": "6.18.44-fc-v1098"})


def test_a_free_threaded_run_whose_gil_came_back_is_labelled_so():
    env = {**environment.key(), "free_threaded": True, "gil": "re-enabled"}
    assert "re-enabled" in environment.label(env) and "reenabled" in environment.slug(env)
    assert environment.traits(env) == set()
    assert environment.traits({**env, "gil": "off"}) == {"no_gil"}


def test_an_undecided_check_says_whether_its_own_interval_or_its_opposite_worlds_straddles():
    from harness.plugin import undecided_why

    own = {"name": "x", "op": "<=", "threshold": 1.5, "interval": [1.2, 1.9], "n": 12, "value": 1.4, "opposite": None}
    assert "x interval 1.2-1.9 straddles <= 1.5 (n=12)" in undecided_why(own)
    theirs = dict(own, interval=[0.1, 0.2], opposite={"label": "a poller", "passed": None, "interval": [0.05, 1.0],
                                                      "n": 12, "value": 0.9})
    assert "opposite world (a poller) interval 0.05-1 straddles" in undecided_why(theirs)
