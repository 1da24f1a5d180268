"""Log every refused CurveZMQ handshake with the peer's address.

A client whose key is not on the allow list is logged by the authenticator
(the ZAP request carries the peer address, see ``security``). Handshakes that
fail before ZAP is asked -- a plain-text client, or one holding the wrong
server public key -- show only on the ROUTER's socket monitor, whose failure
events carry no peer. libzmq reports, on one I/O thread and in this order,
ACCEPTED (value: the fd), HANDSHAKE_FAILED_*, DISCONNECTED (the same fd); so
the peer is read from the fd when it is accepted and named when that fd is
disconnected after a failure.

A client with a wrong key reconnects every few hundred milliseconds, so the
log gets one ``handshake_refused`` line per peer host and interval: the first
refusal at once, the rest counted and written as one line (``count=N``) when
the interval is over.
"""
from __future__ import annotations

import os
import socket
import threading
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import log

_EVENTS = (zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


REFUSAL_LOG_INTERVAL_S = 10.0


class RefusalLog:
    """Rate-limited ``handshake_refused`` lines, per peer host. Called from the
    main loop (monitor) and the authenticator's thread (ZAP), hence the lock."""

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S):
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._open: dict[str, list] = {}   # host -> [interval start, refusals not yet logged, last fields]

    def note(self, peer: str, **fields) -> None:
        host = _host(peer)
        now = time.monotonic()
        with self._lock:
            entry = self._open.get(host)
            if entry is not None and now - entry[0] < self.interval_s:
                entry[1] += 1
                entry[2] = fields
                return
            if entry is not None and entry[1]:
                log.event("handshake_refused", peer=host, count=entry[1], seconds=round(now - entry[0], 1),
                          **entry[2])
            self._open[host] = [now, 0, fields]
        log.event("handshake_refused", peer=peer, **fields)

    def flush(self) -> None:
        """Write the counted refusals of every interval that is over (the main loop calls this)."""
        now = time.monotonic()
        with self._lock:
            for host, (start, count, fields) in list(self._open.items()):
                if now - start >= self.interval_s:
                    if count:
                        log.event("handshake_refused", peer=host, count=count, seconds=round(now - start, 1),
                                  **fields)
                    del self._open[host]


def _host(peer: str) -> str:
    """'1.2.3.4:5678' / '[::1]:5678' -> the host: a reconnecting client comes from a new port each time."""
    if peer.startswith("["):
        return peer[1:peer.find("]")] if "]" in peer else peer
    return peer.rsplit(":", 1)[0] if peer.count(":") == 1 else peer


# One server per process: the monitor and the ZAP handler share this log.
refusals = RefusalLog()


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
                    refusals.note(peer, reason=self._failed)
                    self._failed = None

    def close(self) -> None:
        try:
            self.router.disable_monitor()
        except zmq.ZMQError:
            pass
        self.socket.close(0)
