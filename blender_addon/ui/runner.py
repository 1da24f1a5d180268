"""The GUI driver of the job machine: ``bpy.app.timers`` ticks.

Only one shot runs at a time. The timers run on the main thread (bpy is safe
there); the network runs on worker threads (core/jobs.py for the job,
ui/connect.py for INFO), so a dead address never freezes the window. Loading
another file stops the running job (``load_pre``) and the panel says so after
the load (``load_post``); disabling the add-on or quitting Blender stops it too.
Every ending puts the user's settings back at once: cancel does not wait for
the server to confirm (the worker tells it and lets go on its own).

bpy as a module never fires timers: ``_tick`` and ``_poll_connection`` are
plain functions the tests call directly, and in background mode the
operators wait for the connection instead of polling it.
"""
from __future__ import annotations

import os
import time

import bpy
from bpy.app.handlers import persistent

from ..core import jobs

TICK_S = 0.05
# How long one tick may export for. Every tick that changes the frame makes Blender redraw the whole window
# afterwards (frame_set and a render both tag every editor; 0.2-0.4 s under software OpenGL, milliseconds on a
# GPU), so frames are exported in batches, sized from the redraw measured between two ticks:
# - the batch plus the redraw after it stays under STANDSTILL_S while the redraw leaves room for one;
# - a window that redraws slower than that still exports a quarter of its redraw time per tick (more ticks
#   would only add more redraws);
# - the batch is at most EXPORT_PER_REDRAW times the redraw, so a fast window still shows every frame or two.
STANDSTILL_S = 0.45
EXPORT_PER_REDRAW = 3.0
MIN_EXPORT_S = 0.03
REDRAW_GUESS_S = 0.25  # the redraw assumed before one was measured (software OpenGL's)
# Each step that waits for the next timer call costs a redraw. A server on this machine or the LAN answers
# INFO and SUBMIT in milliseconds, so Animate waits this long for each answer before handing the rest to
# timers: a live server's job is exported in the click's own tick; a dead address costs the UI this much once.
QUICK_ANSWER_S = 0.1
PROGRESS_REDRAW_S = 1.0  # the progress line alone (steps, ETA) redraws the panel at most this often
SETTLE_S = 0.3            # the second redraw after a change, once the panels measured their sizes
CLOSE_WAIT_S = 0.2   # how long an ending waits for the network worker before letting it finish alone
block_in_background = True  # background mode (no window): operators wait for the server's answer


class _State:
    session = None          # session.Session of the running shot
    connecting = None       # connect.Connection in flight (Test Connection / Animate)
    last_error = ""         # shown in the panel, whole
    last_result = ""        # e.g. "12 frames in take_003"
    take_dir = ""           # the last take with frames: the panel says when it is removed
    notes: list = []        # how this shot is made differently from what the user asked (one sentence each)
    server_info: dict | None = None
    server_status = "not connected"
    server_process = None   # Popen of a local server we started
    shown: tuple = ()       # panel_key() at the last redraw
    shown_text = ""         # the progress line at the last redraw
    shown_at = 0.0          # when (time.monotonic())
    timings: dict = {}      # seconds the main thread spent in each step of the last Animate (for make test-gui)
    tick_end = 0.0          # when the last job tick returned (time.monotonic())
    redraw_s = 0.0          # Blender's own time between two job ticks beyond TICK_S: its redraw after a batch
    step_started = 0.0      # when the current main-loop step began work for Animate (the click or a poll)


state = _State()


def running() -> bool:
    return state.session is not None and not state.session.job.finished


def busy() -> bool:
    """A shot runs or a connection is in flight: Animate and Test Connection wait."""
    return running() or state.connecting is not None


def panel_key() -> tuple:
    """What the panel draws from this module, without the progress line: a change here redraws at once."""
    session = state.session
    job = (session.job.progress.stage, session.job.progress.received) if session is not None else ()
    connecting = state.connecting.purpose if state.connecting is not None else ""
    return (job, connecting, state.last_error, state.last_result, state.take_dir, tuple(state.notes),
            state.server_status)


def _progress_text() -> str:
    session = state.session
    return session.job.progress.text() if session is not None else ""


def _redraw(strips: bool = False) -> None:
    """Tag the Inhabit sidebars, and the Sequencer's strip area when a strip grew; nothing else
    (a whole-window redraw costs 0.5-1.2 s under software OpenGL; with region overlap, Blender's
    default, a sidebar redraw also redraws the 3D viewport under it)."""
    state.shown, state.shown_text, state.shown_at = panel_key(), _progress_text(), time.monotonic()
    _tag_regions(strips)
    # Panels that grew or shrank settle on the next draw (Blender places sub-panels from the sizes the
    # previous draw measured): one more redraw shortly after, or a grown note overlaps the next header.
    if not bpy.app.background and not bpy.app.timers.is_registered(_settle):
        bpy.app.timers.register(_settle, first_interval=SETTLE_S)


def _settle():
    _tag_regions(False)
    return None


def _tag_regions(strips: bool) -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in (wm.windows if wm else ()):
        for area in window.screen.areas:
            if area.type not in {"VIEW_3D", "SEQUENCE_EDITOR"}:
                continue
            for region in area.regions:
                if region.type == "UI" or (strips and area.type == "SEQUENCE_EDITOR"
                                           and region.type in {"WINDOW", "PREVIEW"}):
                    region.tag_redraw()


def redraw_if_changed(strips: bool = False) -> bool:
    """Redraw when a frame came back or the stage, a message or the status changed; the progress line
    alone (step, ETA) refreshes at most every PROGRESS_REDRAW_S."""
    due = strips or panel_key() != state.shown or (
        _progress_text() != state.shown_text and time.monotonic() - state.shown_at >= PROGRESS_REDRAW_S)
    if due:
        _redraw(strips)
    return due


def clear_messages() -> None:
    state.last_error = state.last_result = ""
    state.notes = []


# -- connecting ---------------------------------------------------------------------
def _windowed() -> bool:
    """A window draws between timer calls (tests set ``block_in_background`` off to drive that path)."""
    return not (bpy.app.background and block_in_background)


def connect(connection) -> None:
    """Hold ``connection`` until it answers: polled by a timer, or waited for in background mode."""
    state.connecting = connection
    state.step_started = time.monotonic()
    if not _windowed():
        redraw_if_changed()
        try:
            connection.poll(wait_s=60.0)
        finally:
            state.connecting = None
        return
    if _answered(connection, QUICK_ANSWER_S):
        return
    redraw_if_changed()
    if not bpy.app.timers.is_registered(_poll_connection):
        bpy.app.timers.register(_poll_connection, first_interval=TICK_S)


def _poll_connection():
    state.step_started = time.monotonic()
    conn = state.connecting
    if conn is None or _answered(conn, 0.0):
        return None
    return TICK_S


def _answered(conn, wait_s: float) -> bool:
    """Poll ``conn`` (waiting up to ``wait_s``); once it answered, the panel shows the outcome."""
    try:
        done = conn.poll(wait_s=wait_s)
    except Exception as exc:  # a failing callback must not leave the panel connecting forever
        state.last_error = f"{type(exc).__name__}: {exc}"
        done = True
    if done:
        if state.connecting is conn:
            state.connecting = None
        redraw_if_changed()
    return done


# -- the job --------------------------------------------------------------------------
def start(session, notes=()) -> None:
    state.session = session
    state.last_error = state.last_result = state.take_dir = ""
    state.notes = list(notes) + list(session.exporter.renderer.notes if session.exporter.renderer else ())
    session.job.start()
    if _windowed():
        # The first batch goes out in this same step when the server accepts at once (see QUICK_ANSWER_S).
        session.job.wait_accepted(QUICK_ANSWER_S)
        state.tick_end = 0.0
        if _tick(spent_s=time.monotonic() - state.step_started) is None:
            return
    redraw_if_changed()
    if bpy.app.timers.is_registered(_tick):
        return
    bpy.app.timers.register(_tick, first_interval=TICK_S)


def cancel() -> bool:
    """Stop the job now: settings back, frames kept; the worker tells the server on its own."""
    if state.session is None or state.session.job.finished:
        return False
    state.session.job.cancel()
    _finish()
    return True


def _finish(why: str = "") -> None:
    session, state.session = state.session, None
    job = session.job
    try:
        session.close(wait_s=CLOSE_WAIT_S)
    finally:
        sink = session.sink
        n = len(sink.frame_paths)
        state.take_dir = sink.take_dir if n else ""
        kept = f"{n} frames kept in {sink.take_dir}" if n else "no frame came back, so no take was kept"
        if why:
            state.last_error = f"{why}; {kept}."
        elif job.state == jobs.DONE:
            state.last_result = f"{n} frames in {sink.take_dir} (strip {sink.strip_name!r} in scene " \
                                f"{_scene_name(sink.scene)!r})"
        elif job.state == jobs.CANCELLED:
            state.last_result = f"Cancelled; {kept}."
        else:
            error = (job.error or "The job failed.").rstrip()
            state.last_error = error + ("" if error.endswith(".") else ".") + (f" {kept[0].upper()}{kept[1:]}."
                                                                                  if n else "")
        redraw_if_changed(strips=True)


def _scene_name(scene) -> str:
    try:
        return scene.name
    except ReferenceError:
        return "(deleted)"


def _tick(spent_s: float = 0.0):
    """The job's timer; ``spent_s``: seconds this main-loop step already took before the tick."""
    session = state.session
    if session is None:
        return None
    received = session.job.progress.received
    now = time.monotonic()
    if state.tick_end:
        state.redraw_s = max(0.0, now - state.tick_end - TICK_S)
    budget = max(MIN_EXPORT_S, export_budget(state.redraw_s or REDRAW_GUESS_S) - spent_s)
    try:
        finished = session.job.tick(export_budget_s=budget)
    except Exception as exc:  # never let an exception kill the timer silently
        session.job._fail(f"{type(exc).__name__}: {exc}")
        finished = True
    # A final state ends the shot for the user at once: the worker may still be telling the server.
    if finished or session.job.finished:
        _finish()
        return None
    redraw_if_changed(strips=session.job.progress.received != received)
    state.tick_end = time.monotonic()
    return TICK_S


def export_budget(redraw_s: float) -> float:
    """Seconds of export for the next tick, given how long Blender took between the last two ticks."""
    return max(MIN_EXPORT_S, min(max(STANDSTILL_S - redraw_s, redraw_s / 4), EXPORT_PER_REDRAW * redraw_s))


def take_removed() -> bool:
    return bool(state.take_dir) and not os.path.isdir(state.take_dir)


@persistent
def _on_load_pre(*_args):
    """Another file is loading: its scenes replace ours, so stop the job now (settings back, frames kept)."""
    state.connecting = None
    if state.session is not None:
        if not state.session.job.finished:
            state.session.job.cancel()
        try:
            _finish("Another file was loaded, so the Inhabit job stopped")
        except Exception:
            pass  # _finish has written the sentence; the old file's scenes are going away anyway


@persistent
def _on_load_post(*_args):
    """The new file's panels draw the message left by ``_on_load_pre`` (or the idle state)."""
    state.shown = ()
    redraw_if_changed()


def register():
    for handlers, fn in ((bpy.app.handlers.load_pre, _on_load_pre), (bpy.app.handlers.load_post, _on_load_post)):
        if fn not in handlers:
            handlers.append(fn)


def unregister():
    _on_load_pre()
    for handlers, fn in ((bpy.app.handlers.load_pre, _on_load_pre), (bpy.app.handlers.load_post, _on_load_post)):
        if fn in handlers:
            handlers.remove(fn)
    for timer in (_tick, _poll_connection, _settle):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
