"""The local servers' own side (``python -m harness.children.servers http|rpc``); harness.servers runs them.

Binds 127.0.0.1 on port 0, prints ``PORT <n>``, serves until SIGTERM or until its parent's
pipe on stdin closes. See harness.servers for the two kinds and why each runs in a child.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys


def _serve_http(loop):
    from aiohttp import web

    async def delay(request):
        await asyncio.sleep(float(request.query.get("delay_ms", "0")) / 1000.0)
        return web.Response(text="ok")

    async def start():
        app = web.Application()
        app.router.add_get("/delay", delay)
        runner = web.AppRunner(app, access_log=None)  # a log line per request would cost CPU
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    runner, port = loop.run_until_complete(start())
    return port, runner.cleanup


RPC_METHODS = {"sum": lambda *args: sum(args)}


class _RPCServerProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        import msgpack

        self.transport = transport
        self.unpacker = msgpack.Unpacker()
        self.packb = msgpack.packb

    def data_received(self, data):
        self.unpacker.feed(data)
        out = []
        for msg in self.unpacker:
            kind, msgid, method, params = msg
            fn = RPC_METHODS.get(method)
            if kind != 0 or fn is None:
                out.append(self.packb([1, msgid, f"no method {method!r}", None]))
            else:
                out.append(self.packb([1, msgid, None, fn(*params)]))
        if out:
            self.transport.write(b"".join(out))


def _serve_rpc(loop):
    server = loop.run_until_complete(
        loop.create_server(_RPCServerProtocol, "127.0.0.1", 0, backlog=1024)
    )
    port = server.sockets[0].getsockname()[1]

    async def cleanup():
        server.close()
        await server.wait_closed()

    return port, cleanup


SERVES = {"http": _serve_http, "rpc": _serve_rpc}


def server_loop() -> str:
    """The event loop the servers run on: uvloop when installed (held fixed; clients vary)."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def main(kind: str) -> None:
    if server_loop() == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    port, cleanup = SERVES[kind](loop)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    def parent_gone():  # stdin is the parent's pipe: EOF means the parent is gone
        if not os.read(0, 1024) and not stop.done():
            stop.set_result(None)

    loop.add_reader(0, parent_gone)
    print(f"PORT {port}", flush=True)
    loop.run_until_complete(stop)
    loop.remove_reader(0)
    loop.run_until_complete(cleanup())
    loop.close()



if __name__ == "__main__":
    main(sys.argv[1])
