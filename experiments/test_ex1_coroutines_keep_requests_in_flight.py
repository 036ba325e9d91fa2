"""EX1: one thread with coroutines keeps many web requests in flight at once.

What is measured: N HTTP GETs, each of which the server (harness.servers' aiohttp server, its
own process) answers after L ms of asyncio.sleep, made three ways:
- gather (the benchmark, on both event loops): aiohttp in one thread, ``asyncio.gather`` of N
  requests, at most CONCURRENCY_LIMIT in flight (a semaphore; the connector has the same
  limit); rounds sampled until decided (stats.MIN_SAMPLES to MAX_ROUNDS);
- sequential, the opposite world: ``requests.Session.get`` one after another in this thread,
  interleaved with the gather rounds: each round also times a slice of SEQUENTIAL_SLICE requests
  one at a time, and estimates the N-request sequential pass as N x that slice's median
  (latencies, in units of L: one request one at a time costs one latency, whatever N);
- threads, a comparison: a pool of THREAD_WORKERS threads, each with its own requests.Session,
  one pass of all N requests after the rounds (a figure).

Why this method: the server's latency is a sleep, not work, so the predictions are exact in
units of L. N requests that all overlap take ceil(N / limit) latencies; one at a time they take
N; k threads take ceil(N / k). Dividing each wall time by L gives "latencies spent",
comparable across N and machines.

How it is decided: gather's latencies per round, by the 95% interval of their median, against
the geometric midpoint between the claim's ceil(N / limit) and the negation's N; the sequential
world's latencies, from the same rounds, are judged by the same check and must fail it, or the
server did not delay as asked and the part is not discriminating. N = 1 is not a row: with nothing to overlap,
the claim and its negation predict the same one latency (the sequential per-request figure
shows what one request costs).

Known traps: client CPU per request (aiohttp's) is what keeps gather above the ideal at large
N, and the machine is shared; connections are opened before any clock runs (a warm-up), so TCP
handshakes are not timed.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
import requests

from harness import aio, stats
from harness.evidence import Opposite
from harness.scale import pick
from harness.servers import http_server, server_loop  # noqa: F401  (http_server: module-scoped fixture)
from harness.stats import sample_rounds
from harness.timing import replay

REQUESTS = pick(quick=(10, 100), full=(10, 100, 1000))  # N
LATENCY_MS = pick(quick=(20,), full=(20, 50))  # L, the server's per-request delay
THREAD_WORKERS = 10  # k
CONCURRENCY_LIMIT = 100  # gather's semaphore: at most this many requests in flight
MAX_ROUNDS = pick(quick=10, full=20)
# Requests timed one at a time per round, for the opposite world: each costs one latency whatever N,
# so a few per round estimate the N-request pass (N x their median) as well as all N would.
SEQUENTIAL_SLICE = 4
# Claim: gather overlaps up to the limit, ceil(N / limit) latencies; negation: a thread runs one
# request at a time, N latencies. Threshold: their geometric midpoint, (ceil(N/limit) * N) ** 0.5.
MIDPOINT_EXPONENT = 0.5


class ThreadClients:
    """A pool of k threads, each with its own requests.Session (sessions are not thread-safe)."""

    def __init__(self, workers: int):
        self.local = threading.local()
        self.sessions: list[requests.Session] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="ex1-requests")

    def get(self, url: str) -> int:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
            with self.lock:
                self.sessions.append(session)
        with session.get(url) as resp:
            resp.raise_for_status()
            return len(resp.content)

    def run(self, urls) -> int:
        return sum(self.pool.map(self.get, urls))

    def close(self):
        self.pool.shutdown(wait=True)
        for session in self.sessions:
            session.close()


def get_ok(session: requests.Session, url: str) -> None:
    with session.get(url) as resp:
        resp.raise_for_status()
        assert resp.content == b"ok", "every request must come back with its 'ok'"


async def gather(session: aiohttp.ClientSession, urls) -> int:
    limit = asyncio.Semaphore(CONCURRENCY_LIMIT)

    async def one(url):
        async with limit, session.get(url) as resp:
            resp.raise_for_status()
            return len(await resp.read())

    return sum(await asyncio.gather(*(one(u) for u in urls)))


def threshold(n: int) -> float:
    return (math.ceil(n / CONCURRENCY_LIMIT) * n) ** MIDPOINT_EXPONENT


def sequential_slice(session: requests.Session, url: str, n: int) -> list[float]:
    """min(SEQUENTIAL_SLICE, n) requests one at a time, each timed."""
    per_request = []
    for _ in range(min(SEQUENTIAL_SLICE, n)):
        t0 = time.perf_counter()
        get_ok(session, url)
        per_request.append(time.perf_counter() - t0)
    return per_request


def threads_pass(url: str, n: int) -> float:
    """One pass of n requests on k threads: its wall time."""
    threads = ThreadClients(THREAD_WORKERS)
    try:
        threads.run([url] * (2 * THREAD_WORKERS))  # every thread opens its connection
        t0 = time.perf_counter()
        assert threads.run([url] * n) == 2 * n, "every request must come back with its 'ok'"
        return time.perf_counter() - t0
    finally:
        threads.close()


def interleaved_rounds(loop, url: str, n: int, latency: float) -> list[dict]:
    """Rounds of n requests under gather in this thread, each followed by a sequential slice; until both
    worlds' latencies are decided against the threshold."""
    async def open_session():
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY_LIMIT))

    session = loop.run_until_complete(open_session())
    try:
        with requests.Session() as one_at_a_time:
            loop.run_until_complete(gather(session, [url] * min(n, CONCURRENCY_LIMIT)))  # opens the connections
            get_ok(one_at_a_time, url)  # and the sequential world's, before any clock runs

            def one_round():  # entering the loop (~20 us) is noise beside a >= 20 ms round
                c0, t0 = time.process_time(), time.perf_counter()
                assert loop.run_until_complete(gather(session, [url] * n)) == 2 * n, "every request must return 'ok'"
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                return {"wall": wall, "cpu": cpu, "sequential": sequential_slice(one_at_a_time, url, n)}

            def done(rounds):
                return all(stats.decided(lat, "<=", threshold(n)) for lat in latencies(rounds, n, latency))

            return sample_rounds(one_round, max_rounds=MAX_ROUNDS, done=done)
    finally:
        loop.run_until_complete(session.close())


def latencies(rounds: list[dict], n: int, latency: float) -> tuple[list[float], list[float]]:
    """Per round, in units of L: gather's N requests, and the sequential world's estimate for N."""
    gathered = [r["wall"] / latency for r in rounds]
    sequential = [n * stats.median(r["sequential"]) / latency for r in rounds]
    return gathered, sequential


@pytest.mark.claim("EX1")
@pytest.mark.parametrize("latency_ms", LATENCY_MS, ids=lambda ms: f"L{ms}ms")
@pytest.mark.parametrize("n", REQUESTS, ids=lambda n: f"N{n}")
def test_one_thread_keeps_many_requests_in_flight(benchmark, evidence, loop, http_server, n, latency_ms):  # noqa: F811
    latency, url = latency_ms / 1000, http_server.url(f"/delay?delay_ms={latency_ms}")
    rounds = interleaved_rounds(loop, url, n, latency)
    threads_wall = threads_pass(url, n)
    benchmark.group = f"EX1 N requests of {latency_ms} ms: aiohttp gather in one thread"
    replay(benchmark, [r["wall"] for r in rounds])
    evidence.condition(loop=aio.kind(loop), n=n, latency_ms=latency_ms, thread_workers=THREAD_WORKERS,
                       concurrency_limit=CONCURRENCY_LIMIT, server_loop=server_loop())
    walls = [r["wall"] for r in rounds]
    evidence.figure("requests", n, unit="requests")  # N and L, for the caveat's prose
    evidence.figure("server_delay", latency, unit="s")
    gathered, sequential = latencies(rounds, n, latency)
    evidence.figure("gather_wall", unit="s", samples=walls)
    evidence.figure("gather_in_flight", unit="requests", samples=[n * latency / w for w in walls])
    evidence.figure("gather_client_cpu_per_request", unit="s", samples=[r["cpu"] / n for r in rounds])
    per_request = [t for r in rounds for t in r["sequential"]]
    evidence.figure("sequential_per_request", unit="L", samples=[t / latency for t in per_request])
    evidence.figure("sequential_requests_timed", len(per_request), unit="requests")
    evidence.figure("threads_latencies", threads_wall / latency, unit="L")
    evidence.figure("threads_in_flight", n * latency / threads_wall, unit="requests")
    evidence.figure("ideal_gather_latencies", math.ceil(n / CONCURRENCY_LIMIT), unit="L")
    evidence.figure("ideal_threads_latencies", math.ceil(n / THREAD_WORKERS), unit="L")
    evidence.figure("gather_vs_sequential", unit="x", samples=[s / g for g, s in zip(gathered, sequential)])
    evidence.figure("gather_vs_threads", threads_wall / stats.median(walls), unit="x")
    evidence.note("sequential: a slice of the N requests one at a time after each gather round (N x the slice's "
                  "median per round); threads: one pass of all N requests after the rounds")
    evidence.support("gather_latencies", op="<=", threshold=threshold(n), unit="L", samples=gathered,
                     opposite=Opposite("the same N requests one at a time in this thread, interleaved rounds",
                                       samples=sequential),
                     why=f"{n} requests in flight together take ceil(N/limit) latencies; one at a time take {n}")
    evidence.settle(benchmark)
