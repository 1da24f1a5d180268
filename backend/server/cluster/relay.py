"""The cluster's scheduler: the front end's queue, with workers that relay jobs to engine actors.

It is the server's own ``Scheduler`` (same queue, same "oldest job that can
start" rule, same ``running`` set for INFO); only what a worker does with a
job differs. Instead of running the engine, a relay worker leases an actor
from the pool, hands it the job through Ray (``run``, which returns when the
job ends on the node) and moves the job's bytes over its own data-plane
sockets (``dataplane.py``), never through Ray:

- a feeder thread forwards the client's frames to the actor as they arrive
  (popping them from the front end, so a shot is never held whole; the
  buffers are the client's own, sent without a copy) and the cancel when it
  comes;
- the worker itself receives the actor's messages (RESULT, PROGRESS, CREDIT,
  the terminal one), already encoded on the node, and hands them to the
  socket loop's Outbox in order. The credit the actor grants becomes the
  front end's credit before the client can hear of it, so the window is the
  one-machine window.

A node lost mid-job ends that job with one ERROR naming the frame that
``inhabit render --resume`` restarts from (the engine's ``restart_window``);
Ray says so by failing the job's ``run`` call. Ray restarts the actor where a
slot is free and the pool takes it back then (``pool.py``); other jobs go on.

Relay workers follow the cluster's live slot count: a node that joins adds
workers for its slots, so its GPUs take jobs at once.
"""
from __future__ import annotations

import json
import threading
import time

import zmq

from blender_addon.core import messages, protocol
from blender_addon.core.wire import NOBLOCK, recv_parts, send_parts

from .. import log
from ..admission import ranges
from ..job import JobState
from ..outbox import Outgoing
from ..scheduler import Scheduler
from .dataplane import READY, DataPlane, WorkerSockets
from .host import pack_job
from .pool import ActorPool, Lease
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
        self.plane = DataPlane(self.ray.util.get_node_ip_address())

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

    def _worker(self, n: int):
        ringer = self.outbox.new_ringer()
        sockets: dict[bool, WorkerSockets] = {}     # this worker's own: toward this host, toward others
        try:
            while (job := self._take_ready_job()) is not None:
                self._relay(job, ringer, sockets)
        finally:
            ringer.close()
            for pair in sockets.values():
                pair.close()

    def _relay(self, job, ringer, sockets: dict) -> None:
        def send(parts, type_):
            self.outbox.put(ringer, Outgoing(job.id, type_, parts))

        def send_header(hdr):
            send(protocol.encode(hdr), hdr["type"])

        job.state = JobState.RUNNING
        job.started_at = time.monotonic()
        self.running.add(job.id)
        lease = None
        try:
            lease = self.pool.acquire(job.data.engine, cancelled=lambda: job.cancelled or self.stopping)
            if lease is None:
                send_header(protocol.header(protocol.CANCELLED, job=job.id, reason=job.cancel_reason))
                return
            log.event("started", job=job.id, engine=job.data.engine, node=lease.node_id[:12])
            self.loaded_engines.add(job.data.engine)
            emitted: set[int] = set()
            local = self.plane.is_local(lease.ip)
            if local not in sockets:
                sockets[local] = self.plane.sockets(local)
            if not local:
                self.plane.allow(lease.key)
            try:
                last = self._stream(job, lease, send, emitted, sockets[local])
            except NodeLost as exc:
                self.pool.lost(lease, reason=str(exc))
                send_header(self._lost_error(job, emitted))
            else:
                self.pool.release(lease)    # before the client hears the end: INFO then shows the slot free
                send(*last)
        except Exception as exc:  # an engine that cannot start on a node, a Ray fault: this job fails, others go on
            log.event("cluster_error", job=job.id, error=f"{type(exc).__name__}: {exc}")
            if lease is not None:
                self.pool.discard(lease, reason="cluster error")
            send_header(messages.Error(protocol.E_ENGINE_FAILED, f"engine {job.data.engine!r} could not run on the "
                                       f"cluster: {type(exc).__name__}: {str(exc)[:300]}", job=job.id).to_dict())
        finally:
            self.running.discard(job.id)

    def _stream(self, job, lease: Lease, send, emitted: set, plane: WorkerSockets) -> tuple[list, str]:
        """Forward the job's messages until its terminal one, which is returned (parts, type) unsent."""
        done = threading.Event()
        feeder = threading.Thread(target=self._feed, args=(job, plane.feed, done), name=f"inhabit-feed-{job.id}",
                                  daemon=True)
        results = plane.results
        ended_at = None
        try:
            running = lease.actor.run.options(concurrency_group="run").remote(
                pack_job(job.data, job.window, job.start_after), plane.link())
            feeder.start()
            while True:
                if not results.poll(int(POLL_S * 1000)):
                    ended_at = self._check_alive(running, ended_at)
                    continue
                while results.poll(0):
                    parts = recv_parts(results, NOBLOCK)[1:]     # past the actor's routing id
                    hdr = json.loads(parts[0].bytes)
                    if hdr.get("job") != job.id:
                        continue
                    kind = hdr["type"]
                    credit = hdr.get("upto") if kind == protocol.CREDIT else hdr.get("credit")
                    if credit is not None:
                        job.credit = max(job.credit, int(credit))    # before the client can hear of it
                    if kind in protocol.TERMINAL_TYPES:
                        return parts, kind
                    if kind == protocol.RESULT:
                        emitted.add(int(hdr["index"]))
                        job.emitted = len(emitted)
                    send(parts, kind)
        finally:
            done.set()
            job.wake()
            if feeder.is_alive():
                feeder.join()       # it owns the feed socket until then; it looks at ``done`` every POLL_S

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

    def _feed(self, job, feed: zmq.Socket, done: threading.Event) -> None:
        """Forward the client's frames (in index order) and the cancel; runs beside ``_stream``."""
        actor = self._await_ready(job, feed, done)
        cancel_sent = False
        try:
            while actor is not None and not done.is_set():
                with job.cond:
                    batch = [(i, job.frames.pop(i)) for i in sorted(job.frames)]
                    cancelled = job.cancelled and not cancel_sent
                    if not batch and not cancelled:
                        job.cond.wait(POLL_S)
                        continue
                for index, arrays in batch:
                    send_parts(feed, [actor, *protocol.encode(protocol.header(protocol.FRAME, job=job.id,
                                                                              index=index), arrays)])
                if cancelled:
                    send_parts(feed, [actor, *protocol.encode(protocol.header(protocol.CANCEL, job=job.id,
                                                                              reason=job.cancel_reason))])
                    cancel_sent = True
        except zmq.ZMQError:    # the actor is gone (host unreachable): the relay hears why from Ray
            pass

    @staticmethod
    def _await_ready(job, feed: zmq.Socket, done: threading.Event) -> bytes | None:
        """The routing id of the actor's feed socket, once it says the job is open there."""
        while not done.is_set():
            if not feed.poll(int(POLL_S * 1000)):
                continue
            parts = recv_parts(feed, NOBLOCK)
            hdr = json.loads(parts[1].bytes)
            if hdr.get("type") == READY and hdr.get("job") == job.id:
                return parts[0].bytes
        return None

    def _lost_error(self, job, emitted: set) -> dict:
        d = job.data
        first_missing = next((i for i in range(d.frames) if i not in emitted), d.frames)
        restart = protocol.restart_frame(job.engine_cls.describe(), d.params, first_missing)
        log.event("node_lost", job=job.id, delivered=ranges(sorted(emitted)) or "none", resume_from=restart)
        return messages.Error(
            protocol.E_ENGINE_FAILED,
            f"the cluster node running this job was lost after {len(emitted)} of {d.frames} frames; "
            f"`inhabit render --resume` restarts it from job frame {restart} (the engine's restart window), "
            "the frames before are kept", job=job.id).to_dict() | {"resume_from": restart}
