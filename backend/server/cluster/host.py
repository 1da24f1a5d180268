"""The actor that runs jobs on a cluster node: one warm engine on one GPU slot.

An ``EngineHost`` is a one-worker server without sockets. It keeps the
server's own ``Scheduler`` (one worker thread, so the engine is loaded once
and stays warm between jobs), ``ServerJob`` and ``WorkerContext``, so an
engine runs on a node exactly as it runs on one machine: same frame window,
same credit, same progress, cancel and terminal messages. What crosses Ray
is the project's own wire encoding (``protocol.encode``: a JSON header and
raw buffers, as bytes), never pickled project objects.

The front end (``relay.py``) calls, for one job at a time:
``submit`` once, ``put_frame`` per frame as the client's frames arrive,
``cancel`` when asked, and ``take`` in a loop until the job's terminal message.
``take`` has its own concurrency group of one thread: the Outbox's bell is a
zmq socket, used by that one thread only.
"""
from __future__ import annotations

import os
import socket
import threading
from typing import Any

import numpy as np

from backend.server.job import JobState
from blender_addon.core import protocol

# Ray concurrency groups: frames and cancels never wait behind a long-poll ``take``.
CONCURRENCY = {"feed": 1, "results": 1}
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


def pack_frame(job_id: str, index: int, arrays: dict) -> list[bytes]:
    return for_ray(protocol.encode(protocol.header(protocol.FRAME, job=job_id, index=index), arrays))


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

        cls = registry.load_spec(engine_spec)
        self.engine_cls = cls
        self.config = ServerConfig(device=device, weights=weights, workers=1, eager_load=eager_load,
                                   limits=dict(limits))
        if engine_options and hasattr(self.config, "engine_options"):   # the front end's --engine-option values
            self.config.engine_options = dict(engine_options)
        self.jobs: dict = {}
        self.outbox = Outbox(zmq.Context.instance(), f"inproc://inhabit-host-{os.getpid()}-{id(self)}")
        self.scheduler = Scheduler(self.config, {cls.name: cls}, self.outbox, self.jobs)
        self.scheduler.start()
        self._feed_ringer: Any = None
        self.lock = threading.Lock()
        self.early: dict = {}       # job id -> (frames, cancel reason) that came before its submit

    def where(self) -> dict:
        """Which node this actor landed on (the pool's per-node counts in INFO)."""
        import ray
        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}

    def submit(self, parts) -> None:
        from backend.server.job import ServerJob
        job, window, start_after = unpack_job(parts)
        with self.lock:
            for old in [j for j in self.jobs.values() if j.state == JobState.FINISHED]:
                self.jobs.pop(old.id, None)
            sj = ServerJob(job, b"", self.engine_cls, window, start_after)
            self.jobs[job.job_id] = sj
            early, reason = self.early.pop(job.job_id, ([], None))
        for index, arrays in early:
            self._add(sj, index, arrays)
        self.scheduler.enqueue(sj)
        if reason is not None:
            self.cancel(job.job_id, reason)

    def put_frame(self, parts) -> None:
        hdr, arrays = protocol.decode(parts, allowed_types={protocol.FRAME})
        with self.lock:
            sj = self.jobs.get(hdr["job"])
            if sj is None:   # Ray may run this before submit (calls in other threads keep no order): hold it
                self.early.setdefault(hdr["job"], ([], None))[0].append((int(hdr["index"]), arrays))
                return
        if not sj.cancelled:
            self._add(sj, int(hdr["index"]), arrays)
            self.scheduler.wake()

    @staticmethod
    def _add(sj, index: int, arrays: dict) -> None:
        sj.add_frame(index, arrays)
        if len(sj.received) == sj.data.frames:
            sj.end_input()      # the front end checked END_INPUT; Ray may deliver it before the last frame
        sj.wake()

    def cancel(self, job_id: str, reason: str) -> None:
        with self.lock:
            sj = self.jobs.get(job_id)
            if sj is None:
                frames, _ = self.early.get(job_id, ([], None))
                self.early[job_id] = (frames, reason)
                return
        sj.cancel(reason)
        with self.scheduler.cond:   # the worker takes jobs under this lock: it runs the job, or we drop it here
            queued = job_id in self.scheduler.queued
            if queued:
                self.scheduler.queued.remove(job_id)
        if queued:                  # nothing will run it: answer for it
            from backend.server.outbox import Outgoing
            with self.lock:
                if self._feed_ringer is None:
                    self._feed_ringer = self.outbox.new_ringer()
                hdr = protocol.header(protocol.CANCELLED, job=job_id, reason=reason)
                self.outbox.put(self._feed_ringer, Outgoing(job_id, protocol.CANCELLED, protocol.encode(hdr)))

    def take(self, job_id: str, timeout_s: float) -> dict:
        """The job's messages so far (each its encoded parts), waiting up to ``timeout_s`` for one."""
        if not self.outbox.bell.poll(int(timeout_s * 1000)):
            return self._state(job_id, [])
        out = [for_ray(o.frames) for o in self.outbox.take_all() if o.job_id == job_id]
        return self._state(job_id, out)

    def _state(self, job_id: str, messages: list) -> dict:
        sj = self.jobs.get(job_id)
        if sj is not None and messages and _is_terminal(messages[-1]):
            sj.state = JobState.FINISHED
        return {"messages": messages, "credit": sj.credit if sj is not None else 0}

    def stop(self) -> None:
        self.scheduler.stop(timeout=2.0)


def _is_terminal(parts) -> bool:
    import json
    return json.loads(bytes(parts[0])).get("type") in protocol.TERMINAL_TYPES
