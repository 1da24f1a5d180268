"""Run a whole shot without the GUI (``inhabit render``, ``inhabit demo``, farms).

In bpy-as-a-module timers never fire, so the same job state machine the GUI
drives from a timer is driven here by a blocking loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .core import jobs
from .core.settings import ShotSettings
from .session import open_session


@dataclass
class ShotResult:
    take_dir: str
    frame_paths: list       # PNG paths in frame order (only frames received)
    strip_name: str
    channel: int
    frames: int             # frames received
    seconds: float
    state: str = jobs.DONE
    error: str | None = None


class ShotFailed(RuntimeError):
    """The job failed; ``result`` says what was kept on disk."""

    def __init__(self, message: str, result: ShotResult):
        super().__init__(message)
        self.result = result


def run_shot(scene, settings: ShotSettings, *, progress: Callable[[jobs.Progress], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, info: dict | None = None,
             client_options: dict | None = None,
             observe_frame: Callable[[int, dict], None] | None = None) -> ShotResult:
    """Run one shot to the end. Raises SetupError for bad input (before any
    long work), ShotFailed when the job fails; returns the result when done
    or cancelled (``result.state`` tells which). ``client_options`` go to
    ``core.client.Client`` (e.g. ``heartbeat_timeout``); ``observe_frame`` see
    ``session.open_session``."""
    t0 = time.monotonic()
    session = open_session(scene, settings, info=info, client_options=client_options,
                           observe_frame=observe_frame)
    job = session.job
    last_report = 0.0
    try:
        job.start()
        while True:
            if should_cancel is not None and not job.finished and should_cancel():
                job.cancel()
            before = (job.state, job.progress.exported, job.progress.received)
            if job.tick(export_budget_s=0.5):
                break
            now = time.monotonic()
            if progress is not None and now - last_report > 0.2:
                progress(job.progress)
                last_report = now
            if before == (job.state, job.progress.exported, job.progress.received):
                time.sleep(0.005)  # nothing moved: let the worker thread run
    finally:
        session.close()
    if progress is not None:
        progress(job.progress)
    sink = session.sink
    result = ShotResult(take_dir=sink.take_dir, frame_paths=[sink.frame_paths[i] for i in sorted(sink.frame_paths)],
                        strip_name=sink.strip_name, channel=sink.channel, frames=len(sink.frame_paths),
                        seconds=time.monotonic() - t0, state=job.state, error=job.error)
    if job.state == jobs.FAILED:
        raise ShotFailed(job.error or "the job failed", result)
    return result
