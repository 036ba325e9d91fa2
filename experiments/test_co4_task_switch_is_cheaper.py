"""CO4: switching between coroutines is cheaper than switching between threads.

What is measured: the ping-pong of harness.pingpong, in the same rounds, between two asyncio
tasks (over a pair of asyncio.Queue, or of bare futures: the least a hand-off can cost on a
loop) and between two threads (over a pair of queue.SimpleQueue, the cheapest thread hand-off
measured, and over a pipe), with a process pair over the same pipe beside them. One switch is
one round trip / 2, on one CPU.

How it is decided: the claim predicts thread switch / task switch > 1, its negation <= 1, and it
is judged on the lightest hand-off of each side, so that neither side pays for a heavier
channel: bare futures for tasks, queue.SimpleQueue for threads. Each round gives one same-round
ratio, and the interval of their median decides; rounds continue until it clears the threshold,
up to MAX_ROUNDS. The asyncio.Queue hand-off (a queue written in Python, on either loop) is
measured in the same rounds as a figure.

What the absolute µs figures are (the method, as the figures' names say): per-switch time of a
ping-pong *including its channel*: a task switch over asyncio.Queue is the queue's put, the
getter's wake-up through the loop and the switch itself, timed inside the loop over ROUND_TRIPS
round trips per round (entering the loop never counts), with pytest's heap frozen out of the
collector. Round length and warm-up change it by a few per cent; a bare task switch with no
channel (two tasks alternating through asyncio.sleep(0)) is cheaper still, and the loop's own
for/await overhead is part of every figure.

Known traps: uvloop runs the same Python-level queue code on a faster loop, so its ratios are
larger. The thread and process figures are kernel switches plus, for threads, a GIL hand-off.
"""
from __future__ import annotations

import pytest

from harness import aio, stats
from harness.pingpong import ratios, switch_rounds
from harness.scale import pick
from harness.stats import sample_rounds
from harness.thresholds import CHEAPER_THAN
from harness.timing import replay

ROUND_TRIPS = pick(quick=500, full=3000)  # per world per round (2 switches each)
MAX_ROUNDS = pick(quick=15, full=40)  # the bound on sampling while the ratio's interval straddles its threshold
# Claim: a thread switch costs more than a task switch (ratio > 1); negation: no more (<= 1).
# Rule: harness.thresholds.CHEAPER_THAN.
MIN_THREAD_OVER_TASK_SWITCH = CHEAPER_THAN
REFERENCES = ("thread-queue", "thread-pipe", "process-pipe")
DECIDING = "coroutine-future"  # the lightest task hand-off, against the lightest thread hand-off (thread-queue)
FIGURES_ONLY = ("coroutine-queue",)


@pytest.mark.claim("CO4")
def test_coroutine_switch_is_cheaper_than_thread_switch(benchmark, evidence, loop):
    world = DECIDING

    def done(rounds):
        return stats.decided([r["thread-queue"] / r[world] for r in rounds], ">", MIN_THREAD_OVER_TASK_SWITCH)

    samples = switch_rounds((*REFERENCES, world, *FIGURES_ONLY), loop, round_trips=ROUND_TRIPS,
                            sample=lambda one_round: sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done))
    benchmark.group = "PR3/TH3/CO4 switch cost (ping-pong, one CPU)"
    replay(benchmark, samples[world])
    evidence.condition(world=world, loop=aio.kind(loop), round_trips=ROUND_TRIPS, cpus_pinned=1)
    for w, values in samples.items():
        evidence.figure(f"{w}_switch_incl_channel", unit="s", samples=values)
    evidence.note("per switch = round trip / 2, channel included, timed inside the loop, both partners on one CPU, "
                  "pytest's heap frozen out of the collector")
    evidence.figure("process_over_task", unit="x", samples=ratios(samples, "process-pipe", world))
    evidence.figure("thread_pipe_over_task", unit="x", samples=ratios(samples, "thread-pipe", world))
    evidence.figure("thread_over_task_switch_asyncio_queue", unit="x",
                    samples=ratios(samples, "thread-queue", "coroutine-queue"))
    evidence.support(
        "thread_over_task_switch", op=">", threshold=MIN_THREAD_OVER_TASK_SWITCH, unit="x",
        samples=ratios(samples, "thread-queue", world),
        why="the cheapest thread hand-off (queue.SimpleQueue) vs the cheapest task hand-off (a bare future), "
            "same rounds",
    )
    evidence.settle(benchmark)
