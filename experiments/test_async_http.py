"""EX1: one thread with coroutines keeps many web requests in flight at once.

What is measured: N HTTP GETs, each of which the server (harness.servers' aiohttp server, its
own process) answers after L ms of asyncio.sleep, made three ways, interleaved round by round:
- sequential: ``requests.Session.get`` one after another in this thread;
- threads: a pool of THREAD_WORKERS threads, each with its own requests.Session;
- gather: aiohttp in one thread, ``asyncio.gather`` of N requests, at most CONCURRENCY_LIMIT
  in flight (a semaphore; the connector has the same limit).
The gather run is the benchmark (on both event loops); the others are measured in its setup.

Why this method: the server's latency is a sleep, not work, so the ideal is exact: N requests
that all overlap take one latency L; k threads need ceil(N/k) latencies; one-at-a-time needs
N. Dividing each wall time by L gives "latencies spent", comparable across N and machines.
The sequential client is the claim's "a thread runs one at a time"; above SEQUENTIAL_SAMPLE
requests its wall is that sample's wall scaled to N (it is linear by construction, which the
N <= SEQUENTIAL_SAMPLE rows show), to keep the run short; likewise the thread pool above
THREAD_SAMPLE requests (whole waves of k, so the scaling is exact up to noise).

How it is decided (N >= 10): gather's wall must be a small number of latencies,
<= MAX_GATHER_FRACTION_OF_N * N, and at least MIN_SPEEDUP_FRACTION * min(N, CONCURRENCY_LIMIT)
times faster than the sequential client (the semaphore caps the overlap, so N = 1000 ideally
takes 10 latencies, not 1). Requests in flight on average (Little's law, N * L / wall) is a figure.
N = 1 has nothing to overlap; there the check is only that one request costs about L.

Known traps: client CPU per request (aiohttp ~0.1-0.3 ms) is what stops gather reaching 1.0
latency at large N, and the machine is shared, so thresholds leave room; connections are opened
before any clock runs (a warm-up round), so TCP handshakes are not timed.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
import requests

from harness.scale import pick
from harness.servers import http_server, server_loop  # noqa: F401  (http_server: module-scoped fixture)

REQUESTS = pick(quick=(1, 10, 100), full=(1, 10, 100, 1000))  # N
LATENCY_MS = pick(quick=(20,), full=(20, 50))  # L, the server's per-request delay
THREAD_WORKERS = 10  # k
CONCURRENCY_LIMIT = 100  # gather's semaphore: at most this many requests in flight
SEQUENTIAL_SAMPLE = 10  # the sequential client makes at most this many requests per round
THREAD_SAMPLE = 10 * THREAD_WORKERS  # the thread pool at most this many (10 waves)
ROUNDS = pick(quick=4, full=5)
MAX_GATHER_FRACTION_OF_N = 0.4  # gather: 1.1-2 L quiet, up to 5.8 L (N=100) with 2 CPU hogs; sequential: N
MIN_SPEEDUP_FRACTION = 0.2  # of the ideal min(N, CONCURRENCY_LIMIT); measured 0.5-1.0, 0.3 with 2 CPU hogs
MAX_SINGLE_LATENCIES = 3.0  # N = 1: about one latency (1.05-1.1 L quiet, 1.6 L with 2 CPU hogs)


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


def sequential(session: requests.Session, urls) -> int:
    total = 0
    for url in urls:
        with session.get(url) as resp:
            resp.raise_for_status()
            total += len(resp.content)
    return total


async def gather(session: aiohttp.ClientSession, urls) -> int:
    limit = asyncio.Semaphore(CONCURRENCY_LIMIT)

    async def one(url):
        async with limit, session.get(url) as resp:
            resp.raise_for_status()
            return len(await resp.read())

    return sum(await asyncio.gather(*(one(u) for u in urls)))


def timed(fn, urls) -> float:
    """Wall time of fn(urls), after checking that every request came back with its "ok"."""
    t0 = time.perf_counter()
    assert fn(urls) == 2 * len(urls), "every request must come back with its 'ok'"
    return time.perf_counter() - t0


@pytest.mark.claim("EX1")
@pytest.mark.parametrize("latency_ms", LATENCY_MS, ids=lambda ms: f"L{ms}ms")
@pytest.mark.parametrize("n", REQUESTS, ids=lambda n: f"N{n}")
def test_one_thread_keeps_many_requests_in_flight(benchmark, evidence, loop, http_server, n, latency_ms):
    latency = latency_ms / 1000
    urls = [http_server.url(f"/delay?delay_ms={latency_ms}")] * n
    seq_urls, thread_urls = urls[:SEQUENTIAL_SAMPLE], urls[:THREAD_SAMPLE]
    walls: dict[str, list[float]] = {"sequential": [], "threads": [], "gather": []}
    cpu: list[float] = []

    async def open_session():
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY_LIMIT))

    with contextlib.ExitStack() as cleanup:  # every client is closed, whatever fails
        threads = ThreadClients(THREAD_WORKERS)
        cleanup.callback(threads.close)
        seq_session = cleanup.enter_context(requests.Session())
        session = loop.run_until_complete(open_session())
        cleanup.callback(lambda: loop.run_until_complete(session.close()))
        one_by_one = functools.partial(sequential, seq_session)

        def in_gather(urls_):
            return loop.run_until_complete(gather(session, urls_))

        # warm-up: every client opens its connections before any clock runs
        loop.run_until_complete(gather(session, urls[:CONCURRENCY_LIMIT]))
        threads.run(urls[: 2 * THREAD_WORKERS])
        sequential(seq_session, seq_urls[:1])

        def setup():
            walls["sequential"].append(timed(one_by_one, seq_urls) * n / len(seq_urls))
            walls["threads"].append(timed(threads.run, thread_urls) * n / len(thread_urls))

        def in_one_thread():  # entering the loop (~20 us) is noise beside a >= 20 ms round
            c0 = time.process_time()
            walls["gather"].append(timed(in_gather, urls))
            cpu.append(time.process_time() - c0)

        benchmark.group = f"EX1 N requests of {latency_ms} ms: aiohttp gather in one thread"
        benchmark.pedantic(in_one_thread, setup=setup, rounds=ROUNDS)

    evidence.condition(event_loop=type(loop).__module__.split(".")[0], requests=n, latency_ms=latency_ms,
                       thread_workers=THREAD_WORKERS, concurrency_limit=CONCURRENCY_LIMIT,
                       server_loop=server_loop())
    spent = {}
    for name, ws in walls.items():
        evidence.figure(f"{name}_wall", unit="s", samples=ws)
        spent[name] = evidence.figure(f"{name}_latencies", unit="L", samples=[w / latency for w in ws])
    ideal = evidence.figure("ideal_gather_latencies", math.ceil(n / CONCURRENCY_LIMIT), unit="L")
    evidence.figure("gather_vs_ideal", spent["gather"] / ideal, unit="x")
    evidence.figure("ideal_threads_latencies", math.ceil(n / THREAD_WORKERS), unit="L")
    evidence.figure("ideal_sequential_latencies", n, unit="L")
    evidence.figure("gather_in_flight", unit="requests", samples=[n * latency / w for w in walls["gather"]])
    evidence.figure("threads_in_flight", unit="requests", samples=[n * latency / w for w in walls["threads"]])
    evidence.figure("gather_client_cpu_per_request", unit="ms", samples=[1e3 * c / n for c in cpu])
    for name, size in (("sequential", SEQUENTIAL_SAMPLE), ("threads", THREAD_SAMPLE)):
        if n > size:
            evidence.note(f"{name} wall = wall of its first {size} requests x {n}/{size} "
                          "(linear by construction)")
    speedup = evidence.figure("gather_vs_sequential", unit="x", samples=[
        s / g for s, g in zip(walls["sequential"], walls["gather"])])
    evidence.figure("gather_vs_threads", unit="x", samples=[
        t / g for t, g in zip(walls["threads"], walls["gather"])])
    if n == 1:
        evidence.support("gather_latencies", spent["gather"], "<=", MAX_SINGLE_LATENCIES, "L",
                         why="a single request has nothing to overlap; it must cost about one latency")
    else:
        evidence.support(
            "gather_latencies", spent["gather"], "<=", MAX_GATHER_FRACTION_OF_N * n, "L",
            why=f"{n} requests in flight together take a few latencies; one at a time take {n}",
        )
        evidence.support(
            "gather_vs_sequential", speedup, ">=", MIN_SPEEDUP_FRACTION * min(n, CONCURRENCY_LIMIT), "x",
            why=f"the same requests one at a time in this thread, same rounds; "
            f"at most {CONCURRENCY_LIMIT} in flight",
        )
    evidence.settle(benchmark)
