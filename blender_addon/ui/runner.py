"""The GUI driver of the job machine: a ``bpy.app.timers`` tick.

Only one shot runs at a time. The timer runs on the main thread (bpy is safe
there); the network runs on the job's worker thread (see core/jobs.py).
Loading another file cancels the running job (``load_pre`` handler), and so
does disabling the add-on or quitting Blender.
"""
from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from ..core import jobs

TICK_S = 0.05


class _State:
    session = None          # session.Session of the running shot
    last_error = ""         # shown in the panel
    last_result = ""        # e.g. "12 frames in take_003"
    server_info: dict | None = None
    server_status = "not connected"
    server_process = None   # Popen of a local server we started


state = _State()


def running() -> bool:
    return state.session is not None and not state.session.job.finished


def _redraw():
    wm = getattr(bpy.context, "window_manager", None)
    for window in (wm.windows if wm else ()):
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR"}:
                area.tag_redraw()


def start(session) -> None:
    state.session = session
    state.last_error = ""
    state.last_result = ""
    session.job.start()
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=TICK_S)


def cancel() -> bool:
    if state.session is None or state.session.job.finished:
        return False
    state.session.job.cancel()
    return True


def _finish() -> None:
    session, state.session = state.session, None
    job = session.job
    try:
        session.close()
    finally:
        n = len(session.sink.frame_paths)
        if job.state == jobs.DONE:
            state.last_result = f"{n} frames in {session.sink.take_dir}"
        elif job.state == jobs.CANCELLED:
            state.last_result = f"cancelled; {n} frames kept in {session.sink.take_dir}"
        else:
            state.last_error = job.error or "the job failed"
        _redraw()


def _tick():
    session = state.session
    if session is None:
        return None
    try:
        finished = session.job.tick(export_budget_s=0.03)
    except Exception as exc:  # never let an exception kill the timer silently
        session.job._fail(f"{type(exc).__name__}: {exc}")
        finished = True
    _redraw()
    if finished:
        _finish()
        return None
    return TICK_S


@persistent
def _on_load_pre(*_args):
    """Another file is loading: its scenes replace ours, so stop the job cleanly."""
    if state.session is not None:
        state.session.job.cancel()
        session, state.session = state.session, None
        try:
            session.job.tick()  # let the worker see the cancel
            session.close()
        except Exception:
            pass


def register():
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister():
    _on_load_pre()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
