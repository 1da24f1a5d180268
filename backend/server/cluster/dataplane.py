"""The front end's end of the data plane: the ZeroMQ sockets that carry jobs' frames and results.

Ray places the engine actors, runs their life cycle and tells the front end
when a node is lost; the bytes of a job do not go through it. The front end
binds one ROUTER socket per kind of node, which every actor's DEALER connects
to (``link.py``), and the server's socket loop drives them itself, so a frame
or a result crosses no thread on the front end:

- a job's relay worker opens a ``Route`` (the job, its lease) and starts the
  job on the actor through Ray; the actor answers READY on the data plane,
  which names its routing id;
- the loop forwards the client's frames as they arrive (popped from the job,
  so a shot is never held whole: the buffers are the client's own, sent
  without a copy), and the cancel;
- the loop hands the actor's messages (RESULT, PROGRESS, CREDIT, the terminal
  one), already encoded on the node, to the client in order. The credit the
  actor grants becomes the front end's credit before the client can hear of
  it, so the window is the one-machine window.

Everything is the project's own wire encoding (``protocol.encode``: a JSON
header and raw buffers), each buffer one zero-copy ZeroMQ frame. Actors on
this host reach a loopback socket without encryption; actors on other hosts
reach a socket bound to the address Ray uses for this node, under CurveZMQ:
the front end makes a key pair when it starts and hands its public key to the
actors through Ray, and lets in only the public keys of the actors it placed
(each actor makes its own pair).
"""
from __future__ import annotations

import json
import threading
import time
from typing import Callable

import zmq
from zmq.auth.thread import ThreadAuthenticator

from blender_addon.core import protocol
from blender_addon.core.wire import NOBLOCK, recv_parts, send_parts

from ..outbox import Outgoing

LOOPBACK = "127.0.0.1"
READY = "cluster_ready"      # actor -> front end: the job is open on the node, send its frames
HWM = 100_000                # messages; the credit window is what bounds a job's frames in flight
BURST = 64                   # actor messages handled before the loop looks at its clients again
OPEN_WAIT_S = 10.0


class Route:
    """A running job's way to its actor: opened by the job's relay worker, driven by the socket loop."""

    def __init__(self, job, release: Callable[[], None]):
        self.job = job
        self.sock: zmq.Socket | None = None  # the data-plane socket its actor reaches (set by ``open``)
        self.release = release               # gives the lease back (before the client hears the end)
        self.actor: bytes | None = None      # the actor's routing id, once it said READY
        self.cancel_sent = False
        self.lock = threading.Lock()         # ``ended`` and ``lost`` are decided under it, once
        self.ended = threading.Event()       # the terminal message came
        self.lost = False                    # the relay found the node lost: drop what still comes
        self.emitted: set[int] = set()


class _ActorKeys:
    """The authenticator's credentials provider: only the keys of actors this front end placed."""

    def __init__(self):
        self.keys: set[bytes] = set()

    def callback(self, domain, key) -> bool:
        return key in self.keys


class DataPlane:
    """Sockets, keys and open routes of one ``inhabit serve --cluster``. Sockets belong to the socket loop's
    thread (the one that makes this object); relay workers only add and remove routes."""

    def __init__(self, node_ip: str, other_hosts: bool):
        self.node_ip = node_ip                      # the address Ray uses for this node
        self.ctx = zmq.Context()                    # its own context: its own authenticator (ZAP handler)
        self.public, self.secret = zmq.curve_keypair()
        self._actors = _ActorKeys()
        self._auth: ThreadAuthenticator | None = None
        self.routes: dict[str, Route] = {}
        self._endpoints: dict = {}
        self.local = self._bind(LOOPBACK, None)
        self.remote: zmq.Socket | None = None
        self._remote_wanted = other_hosts
        self.tick()

    # -- relay workers ---------------------------------------------------------------------
    def allow(self, actor_key: bytes) -> None:
        """Let an actor this front end placed in through the socket for other hosts."""
        self._actors.keys.add(actor_key)

    def endpoint(self, sock: zmq.Socket) -> str:
        return self._endpoints[sock]

    def is_local(self, node_ip: str) -> bool:
        return node_ip in (self.node_ip, LOOPBACK)

    def open(self, route: Route, local: bool, actor_key: bytes) -> dict:
        """Register ``route``; returns what its actor needs to reach the front end (handed over through Ray)."""
        if not local:
            self.allow(actor_key)
            self._remote_wanted = True
            deadline = time.monotonic() + OPEN_WAIT_S
            while self.remote is None:          # the loop binds it on its next turn
                if time.monotonic() > deadline:
                    raise RuntimeError("the front end's data-plane socket for other hosts did not open")
                time.sleep(0.02)
        route.sock = self.local if local else self.remote
        self.routes[route.job.id] = route
        return {"address": self._endpoints[route.sock],
                "server_key": None if local else self.public.decode("ascii")}

    # -- the socket loop -------------------------------------------------------------------
    def sockets(self) -> list:
        return [s for s in (self.local, self.remote) if s is not None]

    def tick(self) -> bool:
        """Forward cancels; bind the socket for other hosts once one is wanted (True then)."""
        for route in list(self.routes.values()):
            if route.job.cancelled and not route.cancel_sent and route.actor is not None:
                route.cancel_sent = True
                self._send(route, protocol.header(protocol.CANCEL, job=route.job.id, reason=route.job.cancel_reason))
        if self._remote_wanted and self.remote is None:
            self._auth = ThreadAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve_callback(domain="*", credentials_provider=self._actors)
            self.remote = self._bind(self.node_ip, (self.public, self.secret))
            return True
        return False

    def frames_arrived(self, job) -> None:
        route = self.routes.get(job.id)
        if route is not None and route.actor is not None:
            self._forward(route)

    def on_data(self, sock: zmq.Socket, deliver) -> None:
        for _ in range(BURST):
            if not sock.poll(0):
                return
            parts = recv_parts(sock, NOBLOCK)
            body = parts[1:]                    # past the actor's routing id
            hdr = json.loads(body[0].bytes)
            route = self.routes.get(hdr.get("job"))
            if route is None or route.lost:
                continue
            kind = hdr["type"]
            if kind == READY:
                route.actor = parts[0].bytes
                self._forward(route)
                continue
            job = route.job
            credit = hdr.get("upto") if kind == protocol.CREDIT else hdr.get("credit")
            if credit is not None:
                job.credit = max(job.credit, int(credit))    # before the client can hear of it
            if kind == protocol.RESULT:
                with route.lock:
                    route.emitted.add(int(hdr["index"]))
                job.emitted = len(route.emitted)
            elif kind in protocol.TERMINAL_TYPES:
                with route.lock:
                    if route.lost:
                        continue
                    route.ended.set()
                route.release()                 # INFO shows the slot free when the client hears the end
            deliver(Outgoing(job.id, kind, body))

    def _forward(self, route: Route) -> None:
        job = route.job
        with job.cond:
            batch = [(i, job.frames.pop(i)) for i in sorted(job.frames)]
        for index, arrays in batch:
            self._send(route, protocol.header(protocol.FRAME, job=job.id, index=index), arrays)
        if job.cancelled and not route.cancel_sent:
            route.cancel_sent = True
            self._send(route, protocol.header(protocol.CANCEL, job=job.id, reason=job.cancel_reason))

    @staticmethod
    def _send(route: Route, hdr: dict, arrays=None) -> None:
        if route.sock is None:
            return
        try:
            send_parts(route.sock, [route.actor, *protocol.encode(hdr, arrays)], NOBLOCK)
        except zmq.ZMQError:    # the actor is gone (host unreachable): its relay hears why from Ray
            pass

    # -- sockets -----------------------------------------------------------------------------
    def _bind(self, host: str, curve) -> zmq.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = HWM
        sock.setsockopt(zmq.MAXMSGSIZE, -1)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)   # a gone actor is an error here, not a silent drop
        if curve:
            sock.curve_publickey, sock.curve_secretkey = curve
            sock.curve_server = True
        sock.bind(f"tcp://{host}:*")
        self._endpoints[sock] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return sock

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self.ctx.destroy(linger=0)
