"""TH6's echo server: an I/O thread echoing over TCP, and a CPU-bound thread toggled beside it.

Usage: python -m harness.children.gil_convoy_server SWITCH_INTERVAL_S

Prints the listening port (127.0.0.1, chosen by the kernel), serves one connection, then reads
control lines on stdin: "on" starts the pure-Python CPU-bound thread, "off" stops it; each is
answered "ok <native thread id of the CPU-bound thread, or 0>" so that the parent can read the
thread's schedstat. The switch interval is set here only, never in the parent.
"""
from __future__ import annotations

import socket
import sys
import threading


class Spinner:
    """A thread running pure Python until stopped: it never releases the GIL by itself."""

    def __init__(self):
        self.running = True
        self.thread = threading.Thread(target=self._spin, name="cpu-bound")
        self.thread.start()

    def _spin(self) -> None:
        x = 0
        while self.running:
            for i in range(1000):
                x += i * i % 7

    def stop(self) -> None:
        self.running = False
        self.thread.join()


def echo(conn: socket.socket) -> None:
    """The I/O thread: blocks in recv, sends back what arrived."""
    while data := conn.recv(65536):
        conn.sendall(data)


def main() -> None:
    sys.setswitchinterval(float(sys.argv[1]))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(listener.getsockname()[1], flush=True)
        conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=echo, args=(conn,), daemon=True, name="io").start()
    spinner = None
    for line in sys.stdin:
        if line.startswith("on") and spinner is None:
            spinner = Spinner()
        elif line.startswith("off") and spinner is not None:
            spinner.stop()
            spinner = None
        print("ok", spinner.thread.native_id if spinner else 0, flush=True)
    if spinner is not None:
        spinner.stop()
    conn.close()


if __name__ == "__main__":
    main()
