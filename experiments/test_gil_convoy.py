"""TH6: a CPU-bound thread inflates the latency of an I/O thread in the same process (the GIL
convoy effect).

What is measured: the latency of single 64-byte round trips to a loopback TCP echo server.
The server's I/O thread lives in a child interpreter; the client that times it is the pytest
process. Beside the server sits, in turn, nothing ("alone"), a pure-Python CPU-bound thread
in the *server's* process, or a CPU-bound *process*. Each benchmark round is one round trip
beside the CPU-bound thread (or process); every BLOCK rounds the setup turns it off and times
BLOCK "alone" round trips, so the variants interleave and share the machine's noise.

Why this method:
- The client must not share the server's GIL, or its own timing would be inflated too; so
  the server and the CPU thread live in one child and the clock lives in another process.
  The switch interval is set only in that child (sys.setswitchinterval), so the pytest
  process's interval is never touched and needs no restoring.
- Requests arrive GAP_S apart, as they do at a real server, not back to back. In a tight
  ping-pong the I/O thread retakes the GIL before the CPU thread has even been scheduled
  (we measured no inflation at all on one CPU and only intermittent inflation on a loaded
  machine that way); with a gap the CPU thread holds the GIL when the request lands. The
  gaps sit in the benchmark's setup, outside the timer.

Why it happens (CPython 3.11): a thread returning from a blocking call (recv, send) must
retake the GIL; the CPU thread drops it only after the waiter has waited one switch
interval (5 ms by default) and asked. So a round trip costs about one to two switch
intervals instead of tens of microseconds.

How it is decided, from same-run figures: latency_ratio = median round trip beside the CPU
thread / median alone must exceed a margin at the default interval and at 0.5 ms. With two
CPUs a CPU-bound process beside the server is the control: it competes for a core, not for
the GIL, so its ratio must stay far below the thread's. Means (the anchor's round trips/s)
and the share of round trips slower than half a switch interval are figures.

Published anchor (another machine, CPython 3.9; figures as given in the project brief, the
source not re-checked here): a threaded echo server fell from about 30k to about 100 round
trips per second beside one CPU-bound thread (~300x), and recovered to about 20k beside a
CPU-bound process (~1.5x). It is recorded as a note, never used for the verdict.

Known traps: with one CPU a CPU-bound process must be preempted for the server to run, so
the process comparison skips under taskset -c 0. Round trips are bounded: at 5 ms each takes
5-10 ms.
"""
from __future__ import annotations

import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time

import pytest

from harness.scale import pick
from harness.skips import needs_gil, needs_linux, needs_two_cpus

SWITCH_INTERVALS_S = (0.005, 0.0005)  # CPython's default, and ten times finer
PAYLOAD_BYTES = 64
GAP_S = 0.002  # between requests; lets the CPU thread take the GIL back, as between real requests
BLOCK = 10  # round trips per variant per block; variants alternate block by block
ROUNDS = pick(quick=60, full=200)  # round trips beside the CPU-bound thread (or process)
MIN_THREAD_RATIO = 3.0  # measured 64-243x at 5 ms and 7.5-133x at 0.5 ms here (load avg 5-17 on 2 cores)
MIN_THREAD_OVER_PROCESS = 5.0  # thread ratio / process ratio; measured 56-187x here (process ratio 0.9-1.6x)
ANCHOR = {"alone_rps": 30_000, "cpu_thread_rps": 100, "cpu_process_rps": 20_000}

SERVER = textwrap.dedent(
    """
    import socket, sys, threading

    sys.setswitchinterval(float(sys.argv[1]))
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    listener.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo():  # the I/O thread
        while data := conn.recv(65536):
            conn.sendall(data)

    spinning = False
    def spin():  # the CPU-bound thread: pure Python, never releases the GIL by itself
        x = 0
        while spinning:
            for i in range(1000):
                x += i * i % 7

    threading.Thread(target=echo, daemon=True).start()
    spinner = None
    for line in sys.stdin:  # control: "on" / "off" start and stop the CPU-bound thread
        if line.startswith("on") and spinner is None:
            spinning = True
            spinner = threading.Thread(target=spin)
            spinner.start()
        elif line.startswith("off") and spinner is not None:
            spinning = False
            spinner.join()
            spinner = None
        print("ok", spinner.native_id if spinner else 0, flush=True)
    spinning = False
    """
)
HOG = "while True: pass"


class EchoServer:
    """The child interpreter with the echo thread; `spinner(on)` toggles its CPU-bound thread."""

    def __init__(self, switch_interval: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(switch_interval)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.sock = None
        try:
            port = int(self.proc.stdout.readline())
            self.sock = socket.create_connection(("127.0.0.1", port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:  # the child runs in its own session: nothing else would stop it
            if self.sock is not None:
                self.sock.close()
            _kill(self.proc)
            self.proc.stdout.close()
            self.proc.stdin.close()
            raise
        self.msg = os.urandom(PAYLOAD_BYTES)
        self.spinner_tid = 0

    def spinner(self, on: bool) -> None:
        self.proc.stdin.write("on\n" if on else "off\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        if len(reply) != 2 or reply[0] != "ok":
            raise RuntimeError("echo server did not acknowledge")
        self.spinner_tid = int(reply[1])

    def spinner_cpu_s(self) -> float:
        """CPU time of the CPU-bound thread: schedstat counts nanoseconds per thread
        (os.times and psutil count 10 ms ticks, too coarse here)."""
        with open(f"/proc/{self.proc.pid}/task/{self.spinner_tid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9

    def round_trip(self) -> float:
        """Seconds for one echo of PAYLOAD_BYTES, checked."""
        sock, msg = self.sock, self.msg
        t0 = time.perf_counter()
        sock.sendall(msg)
        got = b""
        while len(got) < PAYLOAD_BYTES:
            chunk = sock.recv(PAYLOAD_BYTES - len(got))
            if not chunk:
                raise RuntimeError("echo server closed the connection")
            got += chunk
        elapsed = time.perf_counter() - t0
        if got != msg:
            raise RuntimeError("echo returned different bytes")
        return elapsed

    def spaced_round_trips(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            time.sleep(GAP_S)
            out.append(self.round_trip())
        return out

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _kill(self.proc)
        self.proc.stdout.close()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class SpinnerMeter:
    """Cores the CPU-bound thread got over each block, to show it really ran beside the server."""

    def __init__(self, server: EchoServer):
        self.server, self.samples, self._start = server, [], None

    def start(self) -> None:
        self._start = (self.server.spinner_cpu_s(), time.perf_counter())

    def stop(self) -> None:
        if self._start is not None:
            cpu0, wall0 = self._start
            self.samples.append((self.server.spinner_cpu_s() - cpu0) / (time.perf_counter() - wall0))
            self._start = None


def _record(evidence, samples: dict, interval: float) -> dict:
    """Per-variant median and mean latency, round trips/s, share of round trips >= interval/2."""
    medians = {}
    for name, xs in samples.items():
        medians[name] = evidence.figure(f"latency_{name}", unit="us", samples=[x * 1e6 for x in xs]) / 1e6
        mean = statistics.fmean(xs)
        evidence.figure(f"mean_latency_{name}", mean * 1e6, unit="us")
        evidence.figure(f"round_trips_per_s_{name}", 1 / mean, unit="1/s")
        evidence.figure(f"slow_share_{name}", sum(x >= interval / 2 for x in xs) / len(xs), unit="fraction")
    return medians


def _anchor_note(evidence, variant: str, ratio: float) -> None:
    anchor = ANCHOR["alone_rps"] / ANCHOR[f"{variant}_rps"]
    evidence.note(
        f"Published anchor, ANOTHER MACHINE (CPython 3.9): a threaded echo server beside a CPU-bound "
        f"{variant.split('_')[1]} lost {anchor:.1f}x ({ANCHOR['alone_rps']} -> {ANCHOR[f'{variant}_rps']} "
        f"round trips/s). This run, median latency ratio: {ratio:.1f}x. Not used for the verdict."
    )


@pytest.mark.claim("TH6")
@needs_gil
@needs_linux
@pytest.mark.parametrize("switch_interval_ms", [s * 1e3 for s in SWITCH_INTERVALS_S])
def test_cpu_bound_thread_inflates_io_thread_latency(benchmark, evidence, switch_interval_ms):
    interval = switch_interval_ms / 1e3
    samples = {"alone": [], "cpu_thread": []}
    server = EchoServer(interval)
    meter = SpinnerMeter(server)
    rounds = itertools.count()
    try:
        server.spaced_round_trips(BLOCK)  # warm the connection before any clock

        def setup():
            if next(rounds) % BLOCK == 0:
                meter.stop()
                server.spinner(False)
                samples["alone"] += server.spaced_round_trips(BLOCK)
                server.spinner(True)
                meter.start()
            time.sleep(GAP_S)

        def beside_cpu_thread():
            samples["cpu_thread"].append(server.round_trip())

        benchmark.group = "TH6 echo round trip beside a CPU-bound thread"
        benchmark.pedantic(beside_cpu_thread, setup=setup, rounds=ROUNDS)
        meter.stop()
        server.spinner(False)
    finally:
        server.close()

    evidence.condition(switch_interval_s=interval, payload_bytes=PAYLOAD_BYTES, gap_s=GAP_S)
    medians = _record(evidence, samples, interval)
    evidence.figure("cpu_thread_cores", unit="cores", samples=meter.samples)
    ratio = medians["cpu_thread"] / medians["alone"]
    evidence.figure("latency_over_switch_interval", medians["cpu_thread"] / interval, unit="intervals")
    _anchor_note(evidence, "cpu_thread", ratio)
    evidence.support(
        "latency_ratio", ratio, ">=", MIN_THREAD_RATIO, "x",
        why="the I/O thread waits up to a switch interval for the GIL after each blocking call",
    )
    evidence.settle(benchmark)


@pytest.mark.claim("TH6")
@needs_gil
@needs_linux
@needs_two_cpus
def test_cpu_bound_process_inflates_io_latency_far_less_than_a_thread(benchmark, evidence):
    interval = SWITCH_INTERVALS_S[0]
    samples = {"alone": [], "cpu_thread": [], "cpu_process": []}
    server = EchoServer(interval)
    meter = SpinnerMeter(server)
    hog = None
    rounds = itertools.count()
    try:
        hog = subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True)
        os.kill(hog.pid, signal.SIGSTOP)  # the hog runs only during the benchmark's rounds
        server.spaced_round_trips(BLOCK)

        def setup():
            if next(rounds) % BLOCK == 0:
                os.kill(hog.pid, signal.SIGSTOP)
                samples["alone"] += server.spaced_round_trips(BLOCK)
                server.spinner(True)
                meter.start()
                samples["cpu_thread"] += server.spaced_round_trips(BLOCK)
                meter.stop()
                server.spinner(False)
                os.kill(hog.pid, signal.SIGCONT)
            time.sleep(GAP_S)

        def beside_cpu_process():
            samples["cpu_process"].append(server.round_trip())

        benchmark.group = "TH6 echo round trip beside a CPU-bound process"
        benchmark.pedantic(beside_cpu_process, setup=setup, rounds=ROUNDS)
    finally:
        if hog is not None:
            _kill(hog)
        server.close()

    evidence.condition(switch_interval_s=interval, payload_bytes=PAYLOAD_BYTES, gap_s=GAP_S)
    medians = _record(evidence, samples, interval)
    evidence.figure("cpu_thread_cores", unit="cores", samples=meter.samples)
    thread_ratio = evidence.figure("latency_ratio_cpu_thread", medians["cpu_thread"] / medians["alone"], unit="x")
    process_ratio = evidence.figure("latency_ratio_cpu_process", medians["cpu_process"] / medians["alone"], unit="x")
    _anchor_note(evidence, "cpu_thread", thread_ratio)
    _anchor_note(evidence, "cpu_process", process_ratio)
    evidence.support(
        "thread_ratio_over_process_ratio", thread_ratio / process_ratio, ">=", MIN_THREAD_OVER_PROCESS, "x",
        why="a CPU-bound process competes for a core, not for the server's GIL",
    )
    evidence.settle(benchmark)
