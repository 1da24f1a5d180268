"""Run a whole shot without the GUI (``inhabit render``, ``inhabit demo``, farms).

In bpy-as-a-module timers never fire, so the same job state machine the GUI
drives from a timer is driven here by a blocking loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from blender_addon.core import jobs, resume, takes
from blender_addon.core.settings import SetupError, ShotSettings
from blender_addon.session import open_session, server_info_for, shot_client_options
from blender_addon.shot import ResolvedShot, resolve_shot


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
    kept: int = 0           # --resume: frames that were on disk already and stayed as they were
    regenerated: int = 0    # --resume: kept frames generated again from a window start
    resumed: bool = False


class ShotFailed(RuntimeError):
    """The job failed; ``result`` says what was kept on disk."""

    def __init__(self, message: str, result: ShotResult):
        super().__init__(message)
        self.result = result


def run_shot(scene, settings: ShotSettings | ResolvedShot, *,
             progress: Callable[[jobs.Progress], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, info: dict | None = None,
             client_options: dict | None = None,
             observe_frame: Callable[[int, dict], None] | None = None,
             resume_take: bool = False, on_plan: Callable[[str], None] | None = None) -> ShotResult:
    """Run one shot to the end. Raises SetupError for bad input (before any
    long work), ShotFailed when the job fails; returns the result when done
    or cancelled (``result.state`` tells which). ``settings`` may be a shot the
    caller already resolved (``shot.resolve_shot``): it is not checked again.
    ``client_options`` go to ``core.client.Client`` (e.g. ``heartbeat_timeout``);
    ``observe_frame`` see ``session.open_session``. ``resume_take`` continues the
    shot's latest take (frames on disk kept, only missing ones generated;
    ``on_plan`` hears one line saying what will be done); without a take it starts one."""
    t0 = time.monotonic()
    shot = settings if isinstance(settings, ResolvedShot) else resolve_shot(scene, settings)
    options = shot_client_options(shot.settings, client_options)
    shot = shot.against_server(info if info is not None else server_info_for(shot.settings, options))
    if resume_take:
        take_dir = takes.latest_take_dir(shot.settings.output_dir, shot.name)
        if take_dir is not None:
            return _resume(shot, take_dir, t0, progress=progress, should_cancel=should_cancel,
                           client_options=client_options, observe_frame=observe_frame, on_plan=on_plan)
    session = open_session(shot, client_options=client_options, observe_frame=observe_frame)
    _drive(session, progress, should_cancel)
    sink, job = session.sink, session.job
    result = ShotResult(take_dir=sink.take_dir, frame_paths=[sink.frame_paths[i] for i in sorted(sink.frame_paths)],
                        strip_name=sink.strip_name, channel=sink.channel, frames=len(sink.frame_paths),
                        seconds=time.monotonic() - t0, state=job.state, error=job.error)
    if job.state == jobs.FAILED:
        if jobs.refused_as_bad_input(job):   # the server refused the settings: nothing made, no take kept
            raise SetupError("job", job.error or "the server refused the job")
        raise ShotFailed(job.error or "the job failed", result)
    return result


def _drive(session, progress, should_cancel) -> None:
    """The blocking loop: tick the job until it ends, report progress, pass cancel on."""
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


def _resume(shot: ResolvedShot, take_dir, t0, *, progress, should_cancel, client_options, observe_frame,
            on_plan) -> ShotResult:
    from blender_addon.results import ResultSink
    settings, info = shot.settings, shot.info or {}
    resume.check_manifest(take_dir, resume.manifest_of(settings, shot.params))
    count = settings.frame_count
    present = resume.frames_on_disk(take_dir, settings.frame_start, count)
    engine_entry = next(e for e in info["engines"] if e.get("name") == settings.engine)
    runs = resume.plan(present, count, engine_entry, shot.params)
    regenerated = sum(1 for r in runs for i in range(r.start, r.end + 1) if i in present)
    missing = count - len(present)
    if on_plan is not None:
        line = (f"resuming {take_dir}: {len(present)} of {count} frames on disk, generating {missing}")
        if regenerated:
            line += (f" and regenerating {regenerated} kept frame(s) from the start of their window "
                     f"(engine {settings.engine!r} carries frames between windows)")
        on_plan(line if runs else f"resuming {take_dir}: all {count} frames are on disk, nothing to generate")
    sink = ResultSink(shot.scene, take_dir=take_dir, shot_name=shot.name, frame_start=settings.frame_start,
                      channel=settings.channel)
    for i, path in sorted(present.items()):
        sink.keep(i, path)
    state, error = jobs.DONE, None
    for run in runs:
        part = shot.frames(settings.frame_start + run.start, settings.frame_start + run.end)
        session = open_session(part, client_options=client_options, observe_frame=observe_frame,
                               sink=sink, index_offset=run.start)
        _drive(session, progress, should_cancel)
        state, error = session.job.state, session.job.error
        if state != jobs.DONE:
            break
    result = ShotResult(take_dir=take_dir, frame_paths=[sink.frame_paths[i] for i in sorted(sink.frame_paths)],
                        strip_name=sink.strip_name, channel=sink.channel, frames=len(sink.frame_paths),
                        seconds=time.monotonic() - t0, state=state, error=error,
                        kept=len(present) - regenerated, regenerated=regenerated, resumed=True)
    if state == jobs.FAILED:
        raise ShotFailed(error or "the job failed", result)
    return result
