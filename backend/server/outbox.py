"""Messages from worker threads to the main loop, which alone owns the ROUTER.

Thread rules:
- ``put`` runs on worker threads; each worker passes its own ``ringer`` (an
  inproc PUSH socket made by ``new_ringer`` on that thread), because zmq
  sockets are never shared between threads.
- ``take_all`` and the ``bell`` socket belong to the main loop.

The messages themselves travel in a locked deque, already encoded by the
worker, so the main loop only prepends the client's identity and sends. The
bell is an empty inproc message, rung only when the deque goes from empty to
non-empty: a burst of results costs the main loop one wake-up, and the large
buffers are handed over once (to the ROUTER) instead of crossing an extra
socket first.
"""
from __future__ import annotations

import collections
import threading
from typing import NamedTuple

import zmq

from blender_addon.core.wire import EVENTS, NOBLOCK, POLLIN


class Outgoing(NamedTuple):
    job_id: str
    type: str          # the message type, so the main loop need not parse the header
    frames: list       # protocol.encode output: header bytes, then buffers


class Outbox:
    def __init__(self, ctx: zmq.Context, address: str):
        self._ctx = ctx
        self.address = address
        self._lock = threading.Lock()
        self._items: collections.deque[Outgoing] = collections.deque()
        self.bell = ctx.socket(zmq.PULL)
        self.bell.linger = 0
        self.bell.bind(address)

    def new_ringer(self) -> zmq.Socket:
        """A PUSH socket for the calling worker thread (close it on exit)."""
        sock = self._ctx.socket(zmq.PUSH)
        sock.linger = 0
        sock.connect(self.address)
        return sock

    def put(self, ringer: zmq.Socket, item: Outgoing) -> None:
        with self._lock:
            was_empty = not self._items
            self._items.append(item)
        if was_empty:
            try:
                ringer.send(b"", NOBLOCK)
            except zmq.Again:
                pass  # the bell's queue is full, so the main loop is already due to wake

    def take_all(self) -> list[Outgoing]:
        """Silence the bell, then take every queued message in order. A message
        put after the swap rings again, so none waits for the next wake-up."""
        while self.bell.get(EVENTS) & POLLIN:
            self.bell.recv(NOBLOCK)
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def close(self) -> None:
        self.bell.close(0)
