"""Log every refused CurveZMQ handshake with the peer's address.

A client whose key is not on the allow list is logged by the authenticator
(the ZAP request carries the peer address, see ``security``). Handshakes that
fail before ZAP is asked -- a plain-text client, or one holding the wrong
server public key -- show only on the ROUTER's socket monitor, whose failure
events carry no peer. libzmq reports, on one I/O thread and in this order,
ACCEPTED (value: the fd), HANDSHAKE_FAILED_*, DISCONNECTED (the same fd); so
the peer is read from the fd when it is accepted and named when that fd is
disconnected after a failure.
"""
from __future__ import annotations

import os
import socket

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import log

_EVENTS = (zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def _peer_of(fd: int) -> str:
    try:
        # A duplicate of the fd (closing it leaves libzmq's open); family read from the socket itself.
        with socket.socket(fileno=os.dup(fd)) as s:
            host, port = s.getpeername()[:2]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    except OSError:
        return "?"  # the connection closed before the monitor was read


class HandshakeWatch:
    """Reads the ROUTER's monitor socket from the server's main loop."""

    def __init__(self, router: zmq.Socket):
        self.router = router
        self.socket = router.get_monitor_socket(_EVENTS)
        self._peers: dict[int, str] = {}
        self._failed: str | None = None

    def drain(self) -> None:
        while self.socket.poll(0):
            ev = recv_monitor_message(self.socket, zmq.NOBLOCK)
            kind, value = ev["event"], ev["value"]
            if kind == zmq.EVENT_ACCEPTED:
                self._peers[value] = _peer_of(value)
            elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                # PROTOCOL: a plain-text client, or a client holding another server's public key.
                self._failed = ("plain_text_or_wrong_server_key" if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                else f"handshake_failed_errno_{value}")
            elif kind == zmq.EVENT_DISCONNECTED:
                peer = self._peers.pop(value, "?")
                if self._failed is not None:
                    log.event("handshake_refused", peer=peer, reason=self._failed)
                    self._failed = None

    def close(self) -> None:
        try:
            self.router.disable_monitor()
        except zmq.ZMQError:
            pass
        self.socket.close(0)
