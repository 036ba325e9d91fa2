"""Local servers for the I/O experiments, each in its own process, and the fixtures that run them.

Why a separate process: a server in the client's interpreter would share its GIL and its event
loop, so every client figure would include the server's work. Here each server is a fresh
``python -m harness.children.servers <kind>`` child that binds 127.0.0.1 on port 0 and prints the port
the kernel chose; the parent then probes it until it answers a real request.

- ``http``: aiohttp; ``GET /delay?delay_ms=20`` answers "ok" after sleeping that long (the
  latency L of EX1). The sleep is an ``asyncio.sleep``, so the server holds any number of
  requests in flight at once and the client alone decides how many overlap.
- ``rpc``: msgpack-RPC over TCP, the shape aiorpc speaks: request ``[0, msgid, method,
  params]``, response ``[1, msgid, error, result]``; one method, ``sum``. Pipelined requests
  are answered in order, all responses of one read written back in one write.

Both servers run on uvloop when it is installed (the client's loop is what the experiments
vary, the server's is held fixed). A server that does not come up within START_TIMEOUT_S
raises an error naming it, with its stderr; it is stopped and reaped when its fixture ends,
and it exits by itself if its parent dies (it watches its stdin for EOF).
"""
from __future__ import annotations

import contextlib
import http.client
import select
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.children.servers import server_loop  # noqa: F401  (the experiments name the loop from here)
from harness.subproc import child_env, kill_group, module_command

START_TIMEOUT_S = 20.0  # a cold interpreter importing aiohttp takes ~0.5 s; the machine is shared
STOP_TIMEOUT_S = 5.0
ROOT = Path(__file__).resolve().parent.parent
NAMES = {"http": "HTTP server (aiohttp, /delay?delay_ms=)", "rpc": "msgpack-RPC server (sum)"}


# --- the parent's side --------------------------------------------------------------------------
@dataclass
class Server:
    kind: str
    name: str
    port: int
    pid: int
    host: str = "127.0.0.1"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"


class ServerStartError(RuntimeError):
    pass


def _probe(kind: str, port: int) -> None:
    """One real request; raises OSError/ValueError until the server answers it correctly."""
    if kind == "http":
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/delay?delay_ms=0")
            resp = conn.getresponse()
            if resp.status != 200 or resp.read() != b"ok":
                raise ValueError(f"answered {resp.status}")
        finally:
            conn.close()
    else:
        import msgpack

        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(msgpack.packb([0, 0, "sum", [1, 2]]))
            unpacker = msgpack.Unpacker()
            while True:
                data = sock.recv(4096)
                if not data:
                    raise ValueError("closed the connection")
                unpacker.feed(data)
                for msg in unpacker:
                    if list(msg) != [1, 0, None, 3]:
                        raise ValueError(f"answered {msg!r}")
                    return


@contextlib.contextmanager
def running_server(kind: str, timeout: float = START_TIMEOUT_S):
    """Start the `kind` server in a child process, wait until it answers, yield a Server, stop it."""
    name = NAMES[kind]
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        module_command("harness.children.servers", kind),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        cwd=ROOT, env=child_env(), start_new_session=True,
    )
    try:
        port = _await_start(proc, kind, name, timeout, stderr)
        yield Server(kind, name, port, proc.pid)
    finally:
        _stop(proc)
        stderr.close()


def _await_start(proc, kind, name, timeout, stderr) -> int:
    deadline = time.monotonic() + timeout

    def fail(why):
        stderr.seek(0)
        tail = stderr.read().decode(errors="replace")[-2000:]
        raise ServerStartError(f"{name} did not start: {why} (pid {proc.pid}); its stderr:\n{tail}")

    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("PORT "):
        if proc.poll() is not None:
            fail(f"exited with code {proc.returncode} before reporting its port")
        fail(f"reported no port within {timeout:.0f} s (got {line!r})")
    port = int(line.split()[1])
    last_error = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"exited with code {proc.returncode} after binding port {port}")
        try:
            _probe(kind, port)
            return port
        except (OSError, ValueError) as exc:
            last_error = exc
            time.sleep(0.05)
    fail(f"bound port {port} but did not answer within {timeout:.0f} s (last error: {last_error!r})")


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    kill_group(proc.pid)  # anything it left in its session
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            pipe.close()


# Module scope: set up before the per-test leak guard takes its snapshot, so the server's
# process and listening socket are never counted against a test. Import into a test module
# with ``from harness.servers import http_server``.
@pytest.fixture(scope="module")
def http_server():
    with running_server("http") as server:
        yield server


@pytest.fixture(scope="module")
def rpc_server():
    with running_server("rpc") as server:
        yield server


