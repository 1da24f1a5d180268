"""The actor that runs jobs on a cluster node: one warm engine on one GPU slot.

An ``EngineHost`` is a one-worker server without sockets. It keeps the
server's own ``Scheduler`` (one worker thread, so the engine is loaded once
and stays warm between jobs), ``ServerJob`` and ``WorkerContext``, so an
engine runs on a node exactly as it runs on one machine: same frame window,
same credit, same progress, cancel and terminal messages. What crosses Ray
is the project's own wire encoding (``protocol.encode``: a JSON header and
raw buffers, as bytes), never pickled project objects.

The front end (``relay.py``) calls ``run`` once per job, one job at a time:
it hands over the admitted job and where the front end's data-plane sockets
are, and returns once the job's terminal message is sent. The frames, the
cancel and the engine's messages travel on the data plane (``link.py``), not
through Ray; Ray's part is placing the actor and telling the front end when
its node is lost (the ``run`` call then fails).
"""
from __future__ import annotations

import os
import socket
import sys
import threading
from typing import Any

import numpy as np

from backend.server.job import JobState
from blender_addon.core import protocol

# Ray concurrency groups: ``run`` blocks for a whole job; ``where`` and ``stop`` never wait behind it.
CONCURRENCY = {"run": 1}
SUBMIT = "cluster_job"          # the header type of a job handed to an actor (never on the client wire)


def pack_job(job, window: int, start_after: int) -> list[bytes]:
    """An admitted job (``engines.base.AdmittedJob``) in the wire encoding, as bytes for Ray."""
    arrays = {}
    if job.reference is not None:
        arrays[protocol.REFERENCE] = job.reference
    if job.reference_keypoints is not None:
        arrays[protocol.REFERENCE_KEYPOINTS] = job.reference_keypoints
    hdr = protocol.header(SUBMIT, job=job.job_id, engine=job.engine, width=job.width, height=job.height,
                          frames=job.frames, params=job.params, objects=list(job.objects), name=job.name,
                          window=window, start_after=start_after)
    return for_ray(protocol.encode(hdr, arrays))


def for_ray(parts) -> list:
    """Encoded parts as uint8 arrays over the same memory: Ray moves arrays without a copy of its own on
    either side, and the receiver decodes them in place (``protocol.decode`` takes any buffer)."""
    return [np.frombuffer(p, np.uint8) for p in parts]


def unpack_job(parts):
    from backend.server.engines.base import AdmittedJob
    hdr, arrays = protocol.decode(parts, allowed_types={SUBMIT})
    job = AdmittedJob(job_id=hdr["job"], engine=hdr["engine"], width=hdr["width"], height=hdr["height"],
                      frames=hdr["frames"], params=hdr["params"], objects=hdr["objects"],
                      reference=_writable(arrays.get(protocol.REFERENCE)),
                      reference_keypoints=_writable(arrays.get(protocol.REFERENCE_KEYPOINTS)), name=hdr["name"])
    return job, int(hdr["window"]), int(hdr["start_after"])


def _writable(arr):
    return None if arr is None else arr.copy()


class EngineHost:
    """One engine, loaded once, running the jobs the front end hands it one at a time."""

    def __init__(self, engine_spec: str, weights: str | None, device: str, limits: dict, eager_load: bool,
                 engine_options: dict | None = None):
        from backend.server.config import ServerConfig
        from backend.server.engines import registry
        from backend.server.outbox import Outbox
        from backend.server.scheduler import Scheduler
        import zmq

        from .link import NodeLink

        cls = registry.load_spec(engine_spec)
        self.engine_cls = cls
        self.config = ServerConfig(device=device, weights=weights, workers=1, eager_load=eager_load,
                                   limits=dict(limits))
        if engine_options and hasattr(self.config, "engine_options"):   # the front end's --engine-option values
            self.config.engine_options = dict(engine_options)
        self.jobs: dict = {}
        ctx = zmq.Context()
        self.outbox = Outbox(ctx, f"inproc://inhabit-host-{os.getpid()}-{id(self)}")
        self.scheduler = Scheduler(self.config, {cls.name: cls}, self.outbox, self.jobs)
        self.scheduler.start()
        self._cancel_ringer: Any = None
        self.lock = threading.Lock()
        self.link = NodeLink(ctx, self.outbox, self._on_frame, self.cancel)
        # As in the server's own process (app.main_loop): the link thread and the engine's worker hand
        # frames to each other many times a second, and the default 5 ms GIL switch interval would add
        # up to that much to each hand-over while the engine computes. The actor's process is its own.
        sys.setswitchinterval(0.0005)

    def where(self) -> dict:
        """Where this actor landed (the pool's per-node counts in INFO, loopback or not) and its data-plane key."""
        import ray
        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "ip": ray.util.get_node_ip_address(), "key": self.link.public}

    def run(self, parts, link: dict) -> None:
        """Run one job whose frames and messages travel on the data plane ``link``; returns once its
        terminal message is sent."""
        from backend.server.job import ServerJob
        job, window, start_after = unpack_job(parts)
        sj = ServerJob(job, b"", self.engine_cls, window, start_after)
        with self.lock:
            self.jobs[job.job_id] = sj
        try:
            done = self.link.open(job.job_id, link)
            self.scheduler.enqueue(sj)
            done.wait()
        finally:
            with self.lock:
                self.jobs.pop(job.job_id, None)

    def _on_frame(self, job_id: str, index: int, arrays: dict) -> None:
        """A frame from the data plane (on the link's thread)."""
        sj = self.jobs.get(job_id)
        if sj is None or sj.cancelled:
            return
        sj.add_frame(index, arrays)
        if len(sj.received) == sj.data.frames:
            sj.end_input()      # the front end checked END_INPUT before the last frame could reach it
        sj.wake()
        if sj.state == JobState.QUEUED:
            self.scheduler.wake()

    def cancel(self, job_id: str, reason: str) -> None:
        sj = self.jobs.get(job_id)
        if sj is None:
            return
        sj.cancel(reason)
        with self.scheduler.cond:   # the worker takes jobs under this lock: it runs the job, or we drop it here
            queued = job_id in self.scheduler.queued
            if queued:
                self.scheduler.queued.remove(job_id)
        if queued:                  # nothing will run it: answer for it
            from backend.server.outbox import Outgoing
            if self._cancel_ringer is None:     # only the link's thread cancels
                self._cancel_ringer = self.outbox.new_ringer()
            hdr = protocol.header(protocol.CANCELLED, job=job_id, reason=reason)
            self.outbox.put(self._cancel_ringer, Outgoing(job_id, protocol.CANCELLED, protocol.encode(hdr)))

    def stop(self) -> None:
        self.scheduler.stop(timeout=2.0)
        self.link.stop()
