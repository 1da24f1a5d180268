"""The engine actor's end of the data plane: one thread that owns every ZeroMQ socket of the actor.

For each front end that hands it a job, the actor keeps one DEALER connected
to the front end's data-plane socket (``dataplane.py``), kept for its next
jobs. The thread:

- opens a job when ``EngineHost.run`` asks: it notes where the job's messages
  go and tells the front end it is ready, so the frames come only once the
  job is there to take them;
- hands each FRAME (decoded in place, no copy) and the CANCEL to the host;
- sends the engine's messages from the host's ``Outbox`` in order, each as
  encoded on the node, and tells ``run`` once the terminal one is sent.

The requests from ``run`` ride on the Outbox's own bell, so one poll wakes
the thread for everything it does.
"""
from __future__ import annotations

import collections
import threading

import zmq

from blender_addon.core import protocol
from blender_addon.core.wire import NOBLOCK, recv_parts, send_parts

from .dataplane import HWM, READY

POLL_MS = 500
BURST = 64       # feed messages handled before the engine's output is looked at again


class NodeLink:
    def __init__(self, ctx: zmq.Context, outbox, on_frame, on_cancel):
        self.ctx = ctx
        self.outbox = outbox
        self.on_frame = on_frame          # (job id, index, arrays)
        self.on_cancel = on_cancel        # (job id, reason)
        self.public, self.secret = zmq.curve_keypair()   # the front end lets this key in (off this host)
        self._lock = threading.Lock()
        self._requests: collections.deque = collections.deque()
        self._ringers = threading.local()
        self._links: dict[str, zmq.Socket] = {}      # front-end address -> this actor's DEALER to it
        self._routes: dict[str, tuple[zmq.Socket, threading.Event]] = {}
        self._poller = zmq.Poller()
        self._poller.register(outbox.bell, zmq.POLLIN)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="inhabit-node-link", daemon=True)
        self._thread.start()

    def open(self, job_id: str, link: dict) -> threading.Event:
        """Open ``job_id`` toward the front end's sockets in ``link`` (blocks until the front end has been
        told); returns the Event set once the job's terminal message is sent."""
        opened, done = threading.Event(), threading.Event()
        with self._lock:
            self._requests.append((job_id, link, opened, done))
        ringer = getattr(self._ringers, "sock", None)
        if ringer is None:
            ringer = self._ringers.sock = self.outbox.new_ringer()
        ringer.send(b"")
        while not opened.wait(1.0):
            if self._stop.is_set():
                raise RuntimeError("the node link stopped")
        return done

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    # -- the thread ------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                events = dict(self._poller.poll(POLL_MS))
                if self.outbox.bell in events:
                    items = self.outbox.take_all()
                    with self._lock:
                        requests = list(self._requests)
                        self._requests.clear()
                    for request in requests:
                        self._open(*request)
                    for out in items:
                        self._route(out)
                for sock in events:
                    if sock is not self.outbox.bell:
                        self._take_feed(sock)
        finally:
            for sock in self._links.values():
                sock.close(1000)

    def _connect(self, link: dict) -> zmq.Socket:
        sock = self._links.get(link["address"])
        if sock is None:
            sock = self._links[link["address"]] = self._dealer(link["address"], link["server_key"])
            self._poller.register(sock, zmq.POLLIN)
        return sock

    def _dealer(self, endpoint: str, server_key: str | None) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 1000
        sock.sndhwm = sock.rcvhwm = HWM
        sock.setsockopt(zmq.MAXMSGSIZE, -1)
        if server_key:      # a front end on another host: CurveZMQ, this actor's own key pair
            sock.curve_serverkey = server_key.encode("ascii")
            sock.curve_publickey, sock.curve_secretkey = self.public, self.secret
        sock.connect(endpoint)
        return sock

    def _open(self, job_id: str, link: dict, opened: threading.Event, done: threading.Event) -> None:
        sock = self._connect(link)
        self._routes[job_id] = (sock, done)
        send_parts(sock, protocol.encode(protocol.header(READY, job=job_id)))
        opened.set()

    def _route(self, out) -> None:
        route = self._routes.get(out.job_id)
        if route is None:
            return
        send_parts(route[0], out.frames)
        if out.type in protocol.TERMINAL_TYPES:
            del self._routes[out.job_id]
            route[1].set()

    def _take_feed(self, sock: zmq.Socket) -> None:
        for _ in range(BURST):
            if not sock.poll(0):
                return
            parts = recv_parts(sock, NOBLOCK)
            try:
                hdr, arrays = protocol.decode(parts, allowed_types={protocol.FRAME, protocol.CANCEL})
            except protocol.ProtocolError:
                continue    # only the front end reaches this socket; nothing it sends fails here
            if hdr["type"] == protocol.FRAME:
                self.on_frame(hdr["job"], int(hdr["index"]), arrays)
            else:
                self.on_cancel(hdr["job"], str(hdr.get("reason", "cancelled")))
