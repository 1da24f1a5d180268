"""An in-memory ``JobContext`` for running an engine in process, without a server.

It serves frames from a list, records what the engine emits, releases and
reports, and can cancel after a number of ``check_cancelled`` calls (about one
per step) or after a number of emitted frames.
"""
from __future__ import annotations

from backend.server.engines.base import JobCancelled, JobContext, AdmittedJob


class RecordingContext(JobContext):
    def __init__(self, job: AdmittedJob, frames: list[dict], *, cancel_at_step: int | None = None,
                 cancel_after: int | None = None):
        self.job = job
        self._frames = frames
        self.results: dict[int, tuple] = {}
        self.released = 0
        self.progress_calls: list[tuple] = []
        self.checks = 0
        self._cancel_at_step = cancel_at_step    # cancelled once check_cancelled ran more often than this
        self._cancel_after = cancel_after        # cancelled once this many frames were emitted

    def frame(self, index):
        assert index >= self.released, "engine asked for a frame it had released"
        return self._frames[index]

    def release(self, upto):
        assert upto >= self.released, "release went backwards"
        self.released = upto

    def emit(self, index, rgba, matte):
        assert index not in self.results, f"frame {index} emitted twice"
        self.results[index] = (rgba, matte)

    def progress(self, stage, fraction, *, frame=None, step=None, steps=None):
        self.progress_calls.append((stage, fraction, frame, step, steps))

    @property
    def cancelled(self):
        return ((self._cancel_at_step is not None and self.checks > self._cancel_at_step)
                or (self._cancel_after is not None and len(self.results) >= self._cancel_after))

    def check_cancelled(self):
        self.checks += 1
        if self.cancelled:
            raise JobCancelled()
