"""Engine actors pooled per engine and weights, at most one per GPU slot of the cluster.

A job's relay ``acquire``s an actor for its engine: a warm idle one when there
is one (the model stays loaded between jobs), else a new one while the cluster
has a free slot, else -- when every slot holds an idle actor of another engine
-- that actor is ended to make room. Otherwise the relay waits, so jobs queue
on the front end, oldest first, while every slot is busy.

The pool counts slots from Ray's live view of the cluster, so a node that is
lost takes its slots with it and a node that joins adds its own. An actor
whose node was lost is restarted by Ray on a node with room (the lost node
back, another one joining, or a slot another actor gives up); the pool keeps
it as *restarting* and uses it again once Ray has placed it: that is how the
slot comes back. While no node has room, a restarting actor is the first to
give way to a job of another engine, and one still unplaced after
``keep_warm_s`` is ended.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import log
from .host import CONCURRENCY, EngineHost

MAX_RESTARTS = 3       # node losses one actor lives through before the pool places a new one instead


@dataclass
class SlotSettings:
    """Where actors go and what they load (fixed for one ``inhabit serve --cluster``)."""
    resource: str                   # "GPU" (one GPU each), or a custom resource naming GPU slots
    weights: str | None
    limits: dict
    eager_load: bool = False
    engine_specs: dict = field(default_factory=dict)   # engine name -> "module:Class" the nodes import
    engine_options: dict = field(default_factory=dict)  # engine name -> its server options (--engine-option)
    keep_warm_s: float = 600.0      # an idle actor gives its slot back to the cluster after this long

    def actor_options(self) -> dict:
        slot = {"num_gpus": 1} if self.resource == "GPU" else {"resources": {self.resource: 1}}
        # Restarted after a node loss (a new process: its engine loads again on first use); the call that
        # was running on it fails rather than being retried, so its job ends with the resume frame.
        return {"num_cpus": 0, "max_restarts": MAX_RESTARTS, "max_task_retries": 0,
                "concurrency_groups": CONCURRENCY, **slot}

    @property
    def device(self) -> str:
        return "cuda" if self.resource == "GPU" else "cpu"   # Ray gives each GPU actor its own CUDA device


@dataclass(eq=False)
class Lease:
    engine: str
    actor: Any             # a Ray actor handle of EngineHost
    node_id: str
    ip: str = ""           # the address Ray uses for the actor's node (this host's: loopback data plane)
    key: bytes = b""       # the actor's CurveZMQ public key (data plane off this host)
    idle_since: float = 0.0
    placed: Any = None     # while Ray restarts the actor: its ``where`` call, which answers once it is placed


class ActorPool:
    def __init__(self, ray, settings: SlotSettings):
        self.ray = ray
        self.settings = settings
        self.host_class = ray.remote(**settings.actor_options())(EngineHost)
        self.cond = threading.Condition()
        self.idle: dict[str, collections.deque[Lease]] = collections.defaultdict(collections.deque)
        self.busy: list[Lease] = []
        self.restarting: list[Lease] = []   # lost with their node; Ray places them again when a node has room
        self.starting = 0               # actors being placed right now (counted against the slots)
        # Other front ends and batch commands (dataset, eval) share the cluster: a slot idle for
        # keep_warm_s is given back, so nobody waits for it forever.
        self.stopped = threading.Event()
        threading.Thread(target=self._give_back_idle, name="inhabit-pool-idle", daemon=True).start()

    # -- slots -----------------------------------------------------------------------------
    def capacity(self) -> int:
        return int(self.ray.cluster_resources().get(self.settings.resource, 0))

    def _held(self) -> int:
        return len(self.busy) + sum(len(q) for q in self.idle.values()) + len(self.restarting) + self.starting

    def _collect_restarted(self) -> None:
        """Move actors Ray has placed again to the idle ones (under ``cond``)."""
        if not self.restarting:
            return
        ready, _ = self.ray.wait([x.placed for x in self.restarting], num_returns=len(self.restarting), timeout=0)
        for lease in [x for x in self.restarting if x.placed in set(ready)]:
            try:
                where = self.ray.get(lease.placed)
            except self.ray.exceptions.ActorUnavailableError:   # not back yet: ask again
                lease.placed = lease.actor.where.remote()
                continue
            except self.ray.exceptions.RayError:    # out of restarts: Ray gave it up
                self.restarting.remove(lease)
                log.event("actor_ended", engine=lease.engine, node=lease.node_id[:12], reason="restarts exhausted")
                continue
            self.restarting.remove(lease)
            lease.node_id, lease.ip, lease.key, lease.placed = where["node_id"], where["ip"], where["key"], None
            lease.idle_since = time.monotonic()
            self.idle[lease.engine].append(lease)
            log.event("actor_restarted", engine=lease.engine, node=lease.node_id[:12], host=where["host"])

    # -- leases ----------------------------------------------------------------------------
    def acquire(self, engine: str, cancelled=lambda: False) -> Lease | None:
        """A warm or new actor for ``engine``; None if ``cancelled()`` turns true while waiting."""
        while True:
            evict = None
            with self.cond:
                if cancelled():
                    return None
                self._collect_restarted()
                if self.idle[engine]:
                    lease = self.idle[engine].popleft()
                    self.busy.append(lease)
                    return lease
                held, capacity = self._held(), self.capacity()
                own_coming = any(x.engine == engine for x in self.restarting)
                if own_coming and held <= capacity:
                    self.cond.wait(0.5)     # this engine's own actor has room to come back: wait for it
                    continue
                if not own_coming and held < capacity:
                    self.starting += 1
                else:   # an idle actor of another engine gives its slot up, else one of theirs still unplaced
                    evict = next((q.popleft() for q in self.idle.values() if q), None)
                    other = [x for x in self.restarting if x.engine != engine]
                    if evict is None and other:
                        evict = other[0]
                        self.restarting.remove(evict)
                    if evict is None:
                        self.cond.wait(0.5)
                        continue
            if evict is not None:
                self._end(evict, reason="slot needed by another engine")
                continue
            try:
                lease = self._start(engine)
            finally:
                with self.cond:
                    self.starting -= 1
            with self.cond:
                self.busy.append(lease)
            return lease

    def _start(self, engine: str) -> Lease:
        s = self.settings
        t0 = time.monotonic()
        actor = self.host_class.remote(s.engine_specs[engine], s.weights, s.device, s.limits, s.eager_load,
                                       s.engine_options)
        where = self.ray.get(actor.where.remote())
        log.event("actor_started", engine=engine, node=where["node_id"][:12], host=where["host"],
                  seconds=round(time.monotonic() - t0, 2))
        return Lease(engine, actor, where["node_id"], ip=where["ip"], key=where["key"])

    def release(self, lease: Lease) -> None:
        with self.cond:
            if lease in self.busy:
                self.busy.remove(lease)
            lease.idle_since = time.monotonic()
            self.idle[lease.engine].append(lease)
            self.cond.notify_all()

    def _give_back_idle(self) -> None:
        while not self.stopped.wait(min(5.0, self.settings.keep_warm_s)):
            now = time.monotonic()
            with self.cond:
                stale = [x for q in self.idle.values() for x in q if now - x.idle_since >= self.settings.keep_warm_s]
                for lease in stale:
                    self.idle[lease.engine].remove(lease)
                unplaced = [x for x in self.restarting if now - x.idle_since >= self.settings.keep_warm_s]
                for lease in unplaced:
                    self.restarting.remove(lease)
                stale += unplaced
            for lease in stale:
                self._end(lease, reason=f"idle {self.settings.keep_warm_s:g} s")

    def discard(self, lease: Lease, reason: str) -> None:
        """Drop an actor that failed for another reason than its node: its slot is free for a new one."""
        with self.cond:
            if lease in self.busy:
                self.busy.remove(lease)
            self.cond.notify_all()
        self._end(lease, reason)

    def lost(self, lease: Lease, reason: str) -> None:
        """An actor whose node was lost: Ray restarts it where a slot is free, and the pool takes it back then."""
        lease.placed = lease.actor.where.remote()
        log.event("actor_restarting", engine=lease.engine, node=lease.node_id[:12], reason=reason)
        with self.cond:
            if lease in self.busy:
                self.busy.remove(lease)
            lease.idle_since = time.monotonic()
            self.restarting.append(lease)
            self.cond.notify_all()

    def _end(self, lease: Lease, reason: str) -> None:
        log.event("actor_ended", engine=lease.engine, node=lease.node_id[:12], reason=reason)
        try:
            self.ray.kill(lease.actor, no_restart=True)
        except Exception:  # already gone with its node
            pass
        with self.cond:
            self.cond.notify_all()

    def shutdown(self) -> None:
        self.stopped.set()
        with self.cond:
            leases = [*self.busy, *self.restarting, *(x for q in self.idle.values() for x in q)]
            self.busy.clear()
            self.restarting.clear()
            self.idle.clear()
        for lease in leases:
            self._end(lease, reason="shutdown")

    # -- INFO ------------------------------------------------------------------------------
    def describe(self) -> dict:
        """Slots, busy and free, per live node (the cluster section of INFO)."""
        res = self.settings.resource
        with self.cond:
            busy = collections.Counter(lease.node_id for lease in self.busy)
            warm = collections.Counter(lease.node_id for q in self.idle.values() for lease in q)
        nodes = []
        for node in self.ray.nodes():
            slots = int(node.get("Resources", {}).get(res, 0))
            if not node.get("Alive") or not slots:
                continue
            nid = node["NodeID"]
            nodes.append({"node": nid[:12], "address": node.get("NodeManagerAddress"), "slots": slots,
                          "busy": busy[nid], "free": slots - busy[nid], "warm": warm[nid]})
        return {"resource": res, "slots": sum(n["slots"] for n in nodes), "busy": sum(n["busy"] for n in nodes),
                "free": sum(n["free"] for n in nodes), "restarting": len(self.restarting), "nodes": nodes}
