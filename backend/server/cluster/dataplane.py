"""The front end's end of the data plane: ZeroMQ sockets that carry a job's frames and results.

Ray places the engine actors, runs their life cycle and tells the front end
when a node is lost; the bytes of a job do not go through it. Each relay
worker owns two ROUTER sockets per kind of node, which the actors' DEALERs
connect to (``link.py``):

- ``feed``: the front end sends the client's frames and the cancel to the
  actor (the actor first says it is ready for the job, which names its
  DEALER's routing id);
- ``results``: the actor's messages for the client (RESULT, PROGRESS, CREDIT,
  the terminal one), already encoded on the node.

Both carry the project's own wire encoding (``protocol.encode``: a JSON header
and raw buffers), each buffer one zero-copy ZeroMQ frame. An actor on this
host reaches loopback sockets without encryption. An actor on another host
reaches sockets bound to the address Ray uses for this node, under CurveZMQ:
the front end makes a key pair when it starts and hands its public key to the
actors through Ray, and only the public keys of the actors it placed (each
actor makes its own pair) are let in.
"""
from __future__ import annotations

import threading

import zmq
from zmq.auth.thread import ThreadAuthenticator

LOOPBACK = "127.0.0.1"
READY = "cluster_ready"      # actor -> front end on the feed socket: the job is open on the node
HWM = 100_000                # messages; the credit window is what bounds a job's frames in flight


class _ActorKeys:
    """The authenticator's credentials provider: only the keys of actors this front end placed."""

    def __init__(self):
        self.keys: set[bytes] = set()

    def callback(self, domain, key) -> bool:
        return key in self.keys


class DataPlane:
    """Keys and sockets of the front end's data plane (one per ``inhabit serve --cluster``)."""

    def __init__(self, node_ip: str):
        self.node_ip = node_ip                      # the address Ray uses for this node
        self.ctx = zmq.Context()                    # its own context: its own authenticator (ZAP handler)
        self.public, self.secret = zmq.curve_keypair()
        self._actors = _ActorKeys()
        self._auth: ThreadAuthenticator | None = None
        self._lock = threading.Lock()

    def allow(self, actor_public_key: bytes) -> None:
        self._actors.keys.add(actor_public_key)

    def is_local(self, node_ip: str) -> bool:
        return node_ip == self.node_ip or node_ip == LOOPBACK

    def sockets(self, local: bool) -> WorkerSockets:
        """A new pair of sockets for the calling relay worker (loopback, or the node address with CurveZMQ)."""
        if local:
            return WorkerSockets(self.ctx, LOOPBACK, None)
        with self._lock:
            if self._auth is None:
                self._auth = ThreadAuthenticator(self.ctx)
                self._auth.start()
                self._auth.configure_curve_callback(domain="*", credentials_provider=self._actors)
        return WorkerSockets(self.ctx, self.node_ip, (self.public, self.secret))

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
        self.ctx.destroy(linger=0)


class WorkerSockets:
    """One relay worker's feed and results sockets toward one kind of node.

    ``feed`` is used by the worker's feeder thread while a job runs, ``results``
    by the worker itself: never both by one thread at once."""

    def __init__(self, ctx: zmq.Context, host: str, curve: tuple[bytes, bytes] | None):
        self.server_key = curve[0].decode("ascii") if curve else None
        self.feed = self._bind(ctx, host, curve)
        self.feed.setsockopt(zmq.ROUTER_MANDATORY, 1)   # a gone actor is an error here, not a silent drop
        self.results = self._bind(ctx, host, curve)

    @staticmethod
    def _bind(ctx: zmq.Context, host: str, curve) -> zmq.Socket:
        sock = ctx.socket(zmq.ROUTER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = HWM
        sock.setsockopt(zmq.MAXMSGSIZE, -1)
        if curve:
            sock.curve_publickey, sock.curve_secretkey = curve
            sock.curve_server = True
        sock.bind(f"tcp://{host}:*")
        return sock

    def link(self) -> dict:
        """What an actor needs to reach these sockets (handed to it through Ray with each job)."""
        return {"feed": self.feed.getsockopt_string(zmq.LAST_ENDPOINT),
                "results": self.results.getsockopt_string(zmq.LAST_ENDPOINT), "server_key": self.server_key}

    def close(self) -> None:
        self.feed.close(0)
        self.results.close(0)
