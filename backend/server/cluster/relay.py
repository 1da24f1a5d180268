"""The cluster's scheduler: the front end's queue, with workers that relay jobs to engine actors.

It is the server's own ``Scheduler`` (same queue, same "oldest job that can
start" rule, same ``running`` set for INFO); only what a worker does with a
job differs. Instead of running the engine, a relay worker leases an actor
from the pool, opens the job's route on the data plane and hands the job to
the actor through Ray (``run``, which returns when the job ends on the
node). The job's bytes never go through Ray or through the relay worker: the
socket loop moves them on the data plane (``dataplane.py``), frames to the
actor as they arrive and the actor's messages to the client in order, under
the one-machine credit window. Meanwhile the worker only watches the
``run`` call, which is how Ray says the node was lost.

A node lost mid-job ends that job with one ERROR naming the frame that
``inhabit render --resume`` restarts from (the engine's ``restart_window``);
Ray says so by failing the job's ``run`` call. Ray restarts the actor where a
slot is free and the pool takes it back then (``pool.py``); other jobs go on.

Relay workers follow the cluster's live slot count: a node that joins adds
workers for its slots, so its GPUs take jobs at once.
"""
from __future__ import annotations

import functools
import threading
import time

from blender_addon.core import messages, protocol

from .. import log
from ..admission import ranges
from ..job import JobState
from ..outbox import Outgoing
from ..scheduler import Scheduler
from .connect import slot_nodes
from .dataplane import DataPlane, Route
from .host import pack_job
from .pool import ActorPool
from .ray_import import ray as import_ray

POLL_S = 0.5      # how often a quiet job asks Ray whether its actor still lives
SLOTS_CHECK_S = 2.0   # how often the slot count is read to add relay workers for new nodes
LATE_S = 10.0     # how long a terminal message may trail the end of the actor's ``run`` call


class NodeLost(Exception):
    """The actor running a job is gone (its node died or was removed)."""


class ClusterScheduler(Scheduler):
    def __init__(self, config, engine_classes: dict, outbox, jobs: dict):
        super().__init__(config, engine_classes, outbox, jobs)
        self.ray = import_ray()
        self.pool = ActorPool(self.ray, config.cluster)
        node_ip = self.ray.util.get_node_ip_address()
        other_hosts = any(n["NodeManagerAddress"] != node_ip for n in slot_nodes(self.ray, config.cluster.resource))
        self.plane = DataPlane(node_ip, other_hosts)     # made on the socket loop's thread, which drives it

    def start(self) -> None:
        super().start()
        threading.Thread(target=self._follow_slots, name="inhabit-cluster-slots", daemon=True).start()

    def _follow_slots(self) -> None:
        """One relay worker per slot of the live cluster (at least --workers): never fewer, more as nodes join."""
        while True:
            with self.cond:
                if self.stopping:
                    return
                self.cond.wait(SLOTS_CHECK_S)
                if self.stopping:
                    return
            try:
                slots = self.pool.capacity()
            except Exception:  # noqa: BLE001  # Ray busy or reconnecting: look again next time
                continue
            while len(self.threads) < slots:
                n = len(self.threads)
                t = threading.Thread(target=self._worker, args=(n,), name=f"inhabit-worker-{n}", daemon=True)
                t.start()
                self.threads.append(t)
                self.config.workers = len(self.threads)     # INFO's concurrent_jobs
                log.event("relay_workers", workers=len(self.threads), slots=slots)

    def stop(self, timeout: float = 3.0) -> None:
        super().stop(timeout)
        self.pool.shutdown()
        self.plane.close()

    def describe(self) -> dict:
        return {"cluster": self.pool.describe()}

    # -- the socket loop drives the data plane ---------------------------------------------
    def data_sockets(self) -> list:
        return self.plane.sockets()

    def on_data(self, sock, deliver) -> None:
        self.plane.on_data(sock, deliver)

    def frames_arrived(self, job) -> None:
        self.plane.frames_arrived(job)

    def tick(self) -> bool:
        return self.plane.tick()

    def _worker(self, n: int):
        ringer = self.outbox.new_ringer()
        try:
            while (job := self._take_ready_job()) is not None:
                self._relay(job, ringer)
        finally:
            ringer.close()

    def _relay(self, job, ringer) -> None:
        def send_header(hdr):
            self.outbox.put(ringer, Outgoing(job.id, hdr["type"], protocol.encode(hdr)))

        job.state = JobState.RUNNING
        job.started_at = time.monotonic()
        self.running.add(job.id)
        lease = None
        route = None
        try:
            lease = self.pool.acquire(job.data.engine, cancelled=lambda: job.cancelled or self.stopping)
            if lease is None:
                send_header(protocol.header(protocol.CANCELLED, job=job.id, reason=job.cancel_reason))
                return
            log.event("started", job=job.id, engine=job.data.engine, node=lease.node_id[:12])
            self.loaded_engines.add(job.data.engine)
            route = Route(job, functools.partial(self.pool.release, lease))
            link = self.plane.open(route, self.plane.is_local(lease.ip), lease.key)
            try:
                self._watch(route, lease.actor.run.options(concurrency_group="run").remote(
                    pack_job(job.data, job.window, job.start_after), link))
            except NodeLost as exc:
                self.pool.lost(lease, reason=str(exc))
                send_header(self._lost_error(job, route))
        except Exception as exc:  # an engine that cannot start on a node, a Ray fault: this job fails, others go on
            log.event("cluster_error", job=job.id, error=f"{type(exc).__name__}: {exc}")
            if route is not None:
                with route.lock:
                    route.lost = True
            if lease is not None and (route is None or not route.ended.is_set()):
                self.pool.discard(lease, reason="cluster error")
            send_header(messages.Error(protocol.E_ENGINE_FAILED, f"engine {job.data.engine!r} could not run on the "
                                       f"cluster: {type(exc).__name__}: {str(exc)[:300]}", job=job.id).to_dict())
        finally:
            if route is not None:
                self.plane.routes.pop(job.id, None)
            self.running.discard(job.id)

    def _watch(self, route: Route, running) -> None:
        """Until the job's terminal message came (the socket loop gave the lease back then): NodeLost if Ray
        says the actor's ``run`` failed meanwhile."""
        ended_at = None
        while not route.ended.wait(POLL_S):
            try:
                ended_at = self._check_alive(running, ended_at)
            except NodeLost:
                with route.lock:
                    if route.ended.is_set():
                        return
                    route.lost = True
                raise

    def _check_alive(self, running, ended_at: float | None) -> float | None:
        """NodeLost if Ray says the actor's ``run`` failed (its node is gone); the time it ended, if it did."""
        ready, _ = self.ray.wait([running], timeout=0)
        if not ready:
            return None
        try:
            self.ray.get(running)
        except self.ray.exceptions.RayError as exc:
            raise NodeLost(type(exc).__name__) from None
        now = time.monotonic()
        if ended_at is not None and now - ended_at > LATE_S:
            raise NodeLost(f"the job's last message did not arrive within {LATE_S:g} s of its end")
        return ended_at or now

    def _lost_error(self, job, route: Route) -> dict:
        with route.lock:
            emitted = set(route.emitted)
        d = job.data
        first_missing = next((i for i in range(d.frames) if i not in emitted), d.frames)
        restart = protocol.restart_frame(job.engine_cls.describe(), d.params, first_missing)
        log.event("node_lost", job=job.id, delivered=ranges(sorted(emitted)) or "none", resume_from=restart)
        return messages.Error(
            protocol.E_ENGINE_FAILED,
            f"the cluster node running this job was lost after {len(emitted)} of {d.frames} frames; "
            f"`inhabit render --resume` restarts it from job frame {restart} (the engine's restart window), "
            "the frames before are kept", job=job.id).to_dict() | {"resume_from": restart}
