"""Set a shot up for the job machine: checks, exporter, result sink, job.

Both drivers use this: the GUI's timer (ui/runner.py) and the blocking loop
of ``headless.run_shot``. Everything that can be checked before long work is
checked here, in order, each failure a SetupError with one sentence.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from .core import jobs, resume, takes
from .core.settings import SetupError, ShotSettings
from .results import ResultSink
from .scene.export import ShotExporter
from .shot import ResolvedShot


def fetch_server_info(address: str, timeout: float = 3.0, **client_kw) -> dict:
    """INFO from the server, or a SetupError saying how to reach it. ``client_kw``
    go to ``Client`` (the CurveZMQ keys of ``key_options``)."""
    from .core import client as client_mod
    try:
        cl = client_mod.Client(address, timeout=timeout, **client_kw)
    except Exception as exc:
        raise SetupError("server", jobs.describe_error(exc, address)) from None
    try:
        info = cl.info()
    except Exception as exc:
        raise SetupError("server", jobs.describe_error(exc, address)) from None
    finally:
        try:
            cl.close()
        except Exception:
            pass
    return info


def key_options(settings: ShotSettings) -> dict:
    """The shot's CurveZMQ key files as ``Client`` arguments ({} without keys)."""
    from .core.curve_keys import KeyFileError, client_options
    try:
        return client_options(settings.curve_server_key, settings.curve_client_key)
    except KeyFileError as exc:
        raise SetupError("curve_keys", str(exc)) from None


def shot_client_options(settings: ShotSettings, extra: dict | None = None) -> dict:
    """``Client`` arguments for a shot: its keys, then the caller's own (timeouts, heartbeats)."""
    return {**key_options(settings), **(extra or {})}


def server_info_for(settings: ShotSettings, client_options: dict) -> dict:
    """INFO from the shot's server, reached with the keys and timeout of ``client_options``."""
    return fetch_server_info(settings.server, **{k: v for k, v in client_options.items()
                                                 if k.startswith("curve_") or k == "timeout"})


@dataclass
class Session:
    """Everything one running shot owns; ``close()`` releases it all."""
    shot: ResolvedShot
    exporter: ShotExporter
    sink: ResultSink
    job: jobs.ShotJob
    started: float = field(default_factory=time.monotonic)

    def close(self, wait_s: float = 6.0) -> None:
        """Settings back first (whatever else fails), then wait up to ``wait_s`` for the network
        worker; the GUI waits briefly and lets a worker still telling the server finish alone."""
        try:
            self.exporter.close()
        finally:
            self.job.join(wait_s)
            self.sink.discard_if_empty()


def open_session(shot: ResolvedShot, *, client_options: dict | None = None,
                 observe_frame: Callable[[int, dict], None] | None = None,
                 sink: ResultSink | None = None, index_offset: int = 0) -> Session:
    """Build (but do not start) the job of a shot resolved against its server
    (``ResolvedShot.against_server``).

    ``observe_frame(index, arrays)`` sees each exported frame's conditioning
    (main thread, before it is sent); the demo uses it for its contact sheet.
    ``sink`` continues an existing take (``--resume``): this job's frame i is
    the take's frame ``index_offset + i``.
    """
    if shot.info is None:
        raise ValueError("open_session needs a shot resolved against the server (ResolvedShot.against_server)")
    settings = shot.settings
    exporter = ShotExporter(shot)
    try:
        exporter.__enter__()
        if sink is None:
            take_dir = takes.next_take_dir(settings.output_dir, shot.name)
            sink = ResultSink(shot.scene, take_dir=take_dir, shot_name=shot.name, frame_start=settings.frame_start,
                              channel=settings.channel)
            resume.write_manifest(take_dir, resume.manifest_of(settings, shot.params))
        on_result = sink if not index_offset else _shifted(sink, index_offset)
        spec = exporter.job_spec(request=os.path.basename(sink.take_dir))
        job = jobs.ShotJob(spec=spec, address=settings.server, reference=shot.reference,
                           reference_keypoints=shot.reference_keypoints,
                           export_frame=_observed(exporter.export_frame, observe_frame),
                           on_result=on_result,
                           client_options=shot_client_options(settings, client_options))
    except BaseException:
        exporter.close()
        raise
    return Session(shot=shot, exporter=exporter, sink=sink, job=job)


def session_for(scene, settings: ShotSettings) -> Session:
    """The panel's Animate: resolve the shot, ask its server, build the job (SetupError on bad input)."""
    from .shot import resolve_shot
    shot = resolve_shot(scene, settings)
    options = shot_client_options(settings)
    return open_session(shot.against_server(server_info_for(settings, options)))


def _shifted(sink: ResultSink, offset: int):
    def on_result(index, rgba, matte):
        sink(index + offset, rgba, matte)
    return on_result


def _observed(export_frame, observe_frame):
    if observe_frame is None:
        return export_frame

    def export_and_observe(index: int) -> dict:
        arrays = export_frame(index)
        observe_frame(index, arrays)
        return arrays
    return export_and_observe


def default_output_dir(blend_path: str) -> str:
    """Next to the .blend ('//inhabit'), or the temp folder for unsaved files."""
    if blend_path:
        return os.path.join(os.path.dirname(blend_path), "inhabit")
    import tempfile
    return os.path.join(tempfile.gettempdir(), "inhabit")
