"""One job's server-side state and the JobContext an engine sees.

The main loop thread owns the ROUTER socket and adds frames; a worker thread
runs the engine. They share a ``ServerJob`` guarded by one Condition. The
worker never touches the ROUTER socket: it hands its messages to the main loop
through the server's ``Outbox``.
"""
from __future__ import annotations

import enum
import threading
import time

import numpy as np

from backend.server.engines.base import JobCancelled, JobContext, AdmittedJob
from blender_addon.core import messages
from blender_addon.core.codec import RESULT_MATTE, RESULT_RGBA
from blender_addon.core.eta import remaining_seconds

# Progress messages are rate-limited so a fast engine cannot flood a client.
PROGRESS_MIN_INTERVAL_S = 0.1
# A client that sent nothing (not even a ping) for this many heartbeat intervals
# is taken for gone by a job starving for its frames (the heartbeat timeout,
# which ends its jobs for good, is longer).
SILENT_INTERVALS = 3


class FramesStarved(JobCancelled):
    """The job waited for its client's frames past its limit while other jobs
    waited for its worker; it fails with this sentence and frees the worker."""


class JobState(enum.StrEnum):
    """accepted -> queued -> running -> finished (any state may go straight to finished)."""
    ACCEPTED = "accepted"    # admitted; a non-streaming job waits here for end_input
    QUEUED = "queued"        # waiting for a worker (and, if streaming, for its first frames)
    RUNNING = "running"      # a worker runs its engine
    FINISHED = "finished"    # forgotten by the server; its terminal message is sent


class ServerJob:
    """Shared state of one job (main thread writes frames, worker reads them)."""

    def __init__(self, data: AdmittedJob, identity: bytes, engine_cls, window: int, start_after: int = 1):
        self.data = data
        self.start_after = start_after      # frames to hold before a worker takes the job
        self.identity = identity
        self.engine_cls = engine_cls
        self.window = window
        self.cond = threading.Condition()
        self.frames: dict[int, dict] = {}
        self.received: set[int] = set()     # every index ever received (duplicates are errors)
        self.released = 0                   # frames below this are freed
        self.credit = min(data.frames, window)
        self.input_ended = False
        self.cancelled = False
        self.cancel_reason = "cancelled"
        self.state = JobState.ACCEPTED
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.emitted = 0
        self.last_heard = time.monotonic()  # the client's last message of any kind (set by the socket loop)

    @property
    def id(self) -> str:
        return self.data.job_id

    def ready(self) -> bool:
        """Can a worker start it without waiting for the client? (Read by workers
        without the lock: ``received`` only grows and ``input_ended`` only turns on.)"""
        return self.input_ended or len(self.received) >= self.start_after

    def add_frame(self, index: int, arrays: dict) -> None:
        """Store a frame without waking the worker: the main loop calls
        ``wake`` once after a burst of messages, so the worker takes the GIL
        when the loop goes back to waiting instead of forcing a switch per frame."""
        with self.cond:
            self.received.add(index)
            self.frames[index] = arrays

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def end_input(self) -> None:
        with self.cond:
            self.input_ended = True
            self.cond.notify_all()

    def cancel(self, reason: str = "cancelled") -> None:
        with self.cond:
            if not self.cancelled:
                self.cancelled = True
                self.cancel_reason = reason
            self.frames.clear()  # free memory now; the engine stops at its next ctx call
            self.cond.notify_all()

    def held_bytes(self) -> int:
        with self.cond:
            return sum(a.nbytes for f in self.frames.values() for a in f.values())


class WorkerContext(JobContext):
    """What ``Engine.run`` talks to. Every method runs on the worker thread."""

    def __init__(self, job: ServerJob, send, *, limits: dict | None = None, others_waiting=lambda: False):
        self.job = job.data
        self._sj = job
        self._send = send                      # send(header, arrays) -> to this job's client
        limits = limits or messages.DEFAULT_LIMITS
        self._frame_timeout = float(limits["frame_timeout_s"])
        self._silent_limit = SILENT_INTERVALS * float(limits["heartbeat_interval_s"])
        self._others_waiting = others_waiting  # () -> bool: another job could use this worker now
        self._emitted: set[int] = set()
        self._last_progress = 0.0
        self._last_stage: str | None = None
        self._t0 = time.monotonic()
        self._credit_sent = job.credit         # the bound the client last heard (ACCEPTED carried the first)

    @property
    def cancelled(self) -> bool:
        return self._sj.cancelled

    def check_cancelled(self) -> None:
        if self._sj.cancelled:
            raise JobCancelled(self._sj.cancel_reason)

    def frame(self, index: int):
        sj = self._sj
        if not 0 <= index < sj.data.frames:
            raise IndexError(f"frame {index} is outside 0..{sj.data.frames - 1}")
        waiting_since = time.monotonic()
        with sj.cond:
            while True:
                if sj.cancelled:
                    raise JobCancelled(sj.cancel_reason)
                if index in sj.frames:
                    return sj.frames[index]
                if index < sj.released:
                    raise IndexError(f"frame {index} was already released by the engine")
                if sj.input_ended and index not in sj.received:
                    # END_INPUT checks completeness, so this only happens on a race with cancel.
                    raise JobCancelled("input ended without this frame")
                # About to wait for the client: it must hear of any new credit now,
                # not with the next result.
                self._flush_credit()
                self._check_starved(index, waiting_since)
                sj.cond.wait(0.25)

    def _check_starved(self, index: int, waiting_since: float) -> None:
        """A job holds its worker only while its frames arrive: waiting past
        frame_timeout_s, or with a client silent for a few heartbeats, gives the
        worker back (the job fails) -- when another job could use it, not before."""
        now = time.monotonic()
        waited, silent = now - waiting_since, now - self._sj.last_heard
        if waited < self._frame_timeout and silent < self._silent_limit:
            return
        if not self._others_waiting():
            return
        why = (f"its client sent nothing for {silent:.0f} s" if silent >= self._silent_limit else
               f"frame {index} did not arrive within {self._frame_timeout:g} s (inhabit serve --frame-timeout)")
        raise FramesStarved(f"the job gave its worker to a waiting job: {why}; the results already sent are kept, "
                            "run the shot again (--resume) to generate the rest")

    def release(self, upto: int) -> None:
        self.check_cancelled()
        sj = self._sj
        with sj.cond:
            upto = min(int(upto), sj.data.frames)
            if upto <= sj.released:
                return
            for i in range(sj.released, upto):
                sj.frames.pop(i, None)
            sj.released = upto
            sj.credit = min(sj.data.frames, upto + sj.window)
        # The new credit rides on this job's next RESULT or PROGRESS; a CREDIT
        # message of its own goes out only if the engine waits for a frame first
        # (see frame()) or the credit has grown by half a window meanwhile.
        if sj.credit - self._credit_sent >= max(1, sj.window // 2):
            self._flush_credit()

    def _flush_credit(self) -> None:
        credit = self._sj.credit
        if credit > self._credit_sent:
            self._credit_sent = credit
            self._send(messages.Credit(job=self._sj.id, upto=credit), None)

    def _unheard_credit(self) -> int | None:
        """Credit the client has not heard of, to ride on an outgoing RESULT or PROGRESS."""
        credit = self._sj.credit
        if credit > self._credit_sent:
            self._credit_sent = credit
            return credit
        return None

    def emit(self, index: int, rgba: np.ndarray, matte: np.ndarray) -> None:
        self.check_cancelled()
        d = self.job
        if not 0 <= index < d.frames or index in self._emitted:
            raise ValueError(f"engine emitted frame {index} twice or out of range 0..{d.frames - 1}")
        rgba = np.asarray(rgba)
        matte = np.asarray(matte)
        if rgba.dtype != np.uint8 or rgba.shape != (d.height, d.width, 4):
            raise ValueError(f"engine emitted rgba {rgba.dtype}{list(rgba.shape)}; "
                             f"expected uint8[{d.height}, {d.width}, 4]")
        if matte.dtype != np.uint8 or matte.shape != (d.height, d.width):
            raise ValueError(f"engine emitted matte {matte.dtype}{list(matte.shape)}; "
                             f"expected uint8[{d.height}, {d.width}]")
        self._emitted.add(index)
        self._sj.emitted = len(self._emitted)
        self._send(messages.Result(job=d.job_id, index=index, credit=self._unheard_credit()),
                   {RESULT_RGBA: rgba, RESULT_MATTE: matte})

    def progress(self, stage: str, fraction: float, *, frame=None, step=None, steps=None) -> None:
        self.check_cancelled()
        now = time.monotonic()
        fraction = float(min(1.0, max(0.0, fraction)))
        if stage == self._last_stage and fraction < 1.0 and now - self._last_progress < PROGRESS_MIN_INTERVAL_S:
            return
        if stage != self._last_stage:
            self._t0 = now  # the ETA is per stage: loading and generating run at different speeds
        self._last_stage, self._last_progress = stage, now
        elapsed = now - self._t0
        eta = remaining_seconds(elapsed, fraction)
        self._send(messages.Progress(
            job=self.job.job_id, stage=stage, fraction=fraction, frame=frame, step=step, steps=steps,
            eta_s=None if eta is None else round(eta, 2), frames_done=len(self._emitted), frames=self.job.frames,
            credit=self._unheard_credit()), None)

    @property
    def emitted(self) -> set[int]:
        return self._emitted
