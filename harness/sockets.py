"""Connected socket pairs of either transport, with chosen buffer sizes: IO1 and IO2 both need them.

AF_UNIX and loopback TCP queue bytes differently (a unix stream charges queued bytes to the
sender's SO_SNDBUF, TCP to the receiver's SO_RCVBUF), so experiments about kernel buffers
run on both, made the same way here.
"""
from __future__ import annotations

import socket

TRANSPORTS = ("unix", "tcp")


def connected_pair(transport: str, rcvbuf: int | None = None, sndbuf: int | None = None):
    """(sender, receiver): an AF_UNIX socketpair or a loopback TCP connection (127.0.0.1, port 0)."""
    if transport == "unix":
        sender, receiver = socket.socketpair()
        if rcvbuf:
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf:
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        return sender, receiver
    if transport != "tcp":
        raise ValueError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
    with socket.socket() as listener:
        if rcvbuf:  # before listen(): the window scale is fixed by the handshake
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        sender = socket.socket()
        try:
            if sndbuf:
                sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sender.connect(listener.getsockname())
            receiver, _ = listener.accept()
        except BaseException:
            sender.close()
            raise
    return sender, receiver
