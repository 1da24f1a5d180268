"""The cluster's scheduler: the front end's queue, with workers that relay jobs to engine actors.

It is the server's own ``Scheduler`` (same queue, same "oldest job that can
start" rule, same ``running`` set for INFO); only what a worker does with a
job differs. Instead of running the engine, a relay worker leases an actor
from the pool and moves the job through it:

- a feeder thread forwards the client's frames to the actor as they arrive
  (popping them from the front end, so a shot is never held whole) and the
  cancel when it comes;
- the worker itself long-polls the actor's messages (RESULT, PROGRESS,
  CREDIT, the terminal one), already encoded on the node, and hands them to
  the socket loop's Outbox in order. The credit the actor grants becomes the
  front end's credit before the client can hear of it, so the window is the
  one-machine window.

A node lost mid-job ends that job with one ERROR naming the frame that
``inhabit render --resume`` restarts from (the engine's ``restart_window``);
the actor is dropped and its slot filled again by Ray; other jobs go on.
"""
from __future__ import annotations

import json
import threading
import time

from blender_addon.core import messages, protocol

from .. import log
from ..admission import ranges
from ..job import JobState
from ..outbox import Outgoing
from ..scheduler import Scheduler
from .host import pack_frame, pack_job
from .pool import ActorPool, Lease
from .ray_import import ray as import_ray

POLL_S = 0.5      # the longest an actor's take waits before it answers with nothing


class NodeLost(Exception):
    """The actor running a job is gone (its node died or was removed)."""


class ClusterScheduler(Scheduler):
    def __init__(self, config, engine_classes: dict, outbox, jobs: dict):
        super().__init__(config, engine_classes, outbox, jobs)
        self.ray = import_ray()
        self.pool = ActorPool(self.ray, config.cluster)

    def stop(self, timeout: float = 3.0) -> None:
        super().stop(timeout)
        self.pool.shutdown()

    def describe(self) -> dict:
        return {"cluster": self.pool.describe()}

    def _worker(self, n: int):
        ringer = self.outbox.new_ringer()
        try:
            while (job := self._take_ready_job()) is not None:
                self._relay(job, ringer)
        finally:
            ringer.close()

    def _relay(self, job, ringer) -> None:
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
            try:
                last = self._stream(job, lease, send, emitted)
            except NodeLost as exc:
                self.pool.discard(lease, reason=str(exc))
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

    def _stream(self, job, lease: Lease, send, emitted: set) -> tuple[list, str]:
        """Forward the job's messages until its terminal one, which is returned (parts, type) unsent."""
        actor = lease.actor
        done = threading.Event()
        feeder = threading.Thread(target=self._feed, args=(job, actor, done), name=f"inhabit-feed-{job.id}",
                                  daemon=True)
        try:
            actor.submit.options(concurrency_group="feed").remote(pack_job(job.data, job.window, job.start_after))
            feeder.start()
            while True:
                try:
                    out = self.ray.get(actor.take.options(concurrency_group="results").remote(job.id, POLL_S))
                except self.ray.exceptions.RayError as exc:
                    raise NodeLost(f"{type(exc).__name__}") from None
                job.credit = max(job.credit, int(out["credit"]))   # before the client can hear of it
                for parts in out["messages"]:
                    hdr = json.loads(bytes(parts[0]))
                    if hdr["type"] in protocol.TERMINAL_TYPES:
                        return parts, hdr["type"]
                    if hdr["type"] == protocol.RESULT:
                        emitted.add(int(hdr["index"]))
                        job.emitted = len(emitted)
                    send(parts, hdr["type"])
        finally:
            done.set()
            job.wake()
            if feeder.is_alive():
                feeder.join(2.0)

    def _feed(self, job, actor, done: threading.Event) -> None:
        """Forward the client's frames (in index order) and the cancel; runs beside ``_stream``."""
        put = actor.put_frame.options(concurrency_group="feed")
        cancel_sent = False
        while not done.is_set():
            with job.cond:
                batch = [(i, job.frames.pop(i)) for i in sorted(job.frames)]
                cancelled = job.cancelled and not cancel_sent
                if not batch and not cancelled:
                    job.cond.wait(POLL_S)
                    continue
            for index, arrays in batch:
                put.remote(pack_frame(job.id, index, arrays))
            if cancelled:
                actor.cancel.options(concurrency_group="feed").remote(job.id, job.cancel_reason)
                cancel_sent = True

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
