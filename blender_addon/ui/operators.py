"""Operators: Animate, Cancel, Test Connection, Start Local Server, Make Proxy Body."""
from __future__ import annotations

import shlex
import subprocess

import bpy

from ..core.settings import SetupError
from . import runner
from .preferences import get_prefs
from .properties import fill_params_from_info, settings_from_scene


def refusal_level() -> set:
    """How an operator reports bad input. In a window the panel shows the whole sentence and an ERROR
    report would also pop up over the panel's top, so the status bar gets a WARNING; in background mode
    (no panel) it stays an ERROR, which ``bpy.ops`` raises for scripts."""
    return {"ERROR"} if bpy.app.background else {"WARNING"}


class INHABIT_OT_animate(bpy.types.Operator):
    """Render the passes, send them to the server and put the result on the sequencer"""
    bl_idname = "inhabit.animate"
    bl_label = "Animate"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not runner.busy()

    def execute(self, context):
        from .. import compat
        from ..session import key_options
        from ..shot import resolve_shot
        from .connect import Connection
        import time
        t0 = time.perf_counter()
        scene = context.scene  # recorded now: the strip goes here whatever happens later
        runner.clear_messages()
        try:
            settings = settings_from_scene(scene)
            shot = resolve_shot(scene, settings)  # bad input is told before waiting on the network
            keys = key_options(settings)
        except SetupError as exc:
            return self._refuse(exc.message)
        # 5.x shows the workspace's sequencer scene, unset in a new file: show this one there.
        shown = compat.show_in_sequencer(context, scene)
        notes = [] if shown is None or shown == scene else [
            f"The Sequencer shows scene {shown.name!r}; the strip goes to scene {scene.name!r}: pick it in the "
            "Sequencer's scene selector to see the result."]

        def connected(info, error):
            if error is not None:
                runner.state.server_status = "unreachable"
                runner.state.last_error = error.message
                return
            runner.state.server_status = connected_status(info)  # not an older attempt's "unreachable"
            start_shot(shot, info, notes)

        runner.state.timings = {"animate_checks_s": time.perf_counter() - t0}
        runner.connect(Connection(settings.server, keys, connected, purpose="animate"))
        if runner.state.last_error:
            return self._refuse(runner.state.last_error)
        return {"FINISHED"}  # the panel says what happens next (no report: its banner redraws the window)

    def _refuse(self, message: str):
        runner.state.last_error = message
        runner.redraw_if_changed()
        self.report(refusal_level(), message)
        return {"CANCELLED"}


def connected_status(info: dict) -> str:
    """The panel's server line once INFO came back."""
    names = [e.get("name") for e in info.get("engines", [])]
    return f"connected: {info.get('device', '?')}, engines {', '.join(map(str, names))}"


def start_shot(shot, info: dict, notes: list) -> None:
    """Main thread, once the server answered: check the shot's engine params against its INFO, open
    the session (the settings the passes need) and start it. Any failure is one sentence in the
    panel; ``open_session`` has put every setting back by then."""
    import time

    from ..session import open_session
    t0 = time.perf_counter()
    try:
        with _window_context():
            session = open_session(shot.against_server(info))
    except SetupError as exc:
        runner.state.last_error = exc.message
        return
    except Exception as exc:  # not a traceback popup: the panel says what broke
        runner.state.last_error = f"The shot could not start ({type(exc).__name__}: {exc}); your settings are " \
                                  "unchanged."
        return
    runner.state.timings["open_session_s"] = time.perf_counter() - t0
    runner.start(session, notes)


def _window_context():
    """A timer callback has no window in its context: lend it the first one, so the passes see the
    view layer the user works in (as when Animate was pressed), not the scene's first one."""
    import contextlib
    wm = bpy.context.window_manager
    if bpy.context.window is None and wm is not None and wm.windows:
        return bpy.context.temp_override(window=wm.windows[0])
    return contextlib.nullcontext()


class INHABIT_OT_cancel(bpy.types.Operator):
    """Cancel the running Inhabit job (frames already received stay on disk)"""
    bl_idname = "inhabit.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return runner.running()

    def execute(self, context):
        runner.cancel()
        return {"FINISHED"}


class INHABIT_OT_test_connection(bpy.types.Operator):
    """Ask the server for its engines and parameters"""
    bl_idname = "inhabit.test_connection"
    bl_label = "Test Connection"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and runner.state.connecting is None

    def execute(self, context):
        from ..core.curve_keys import KeyFileError, client_options
        from .connect import Connection
        from .preferences import key_settings
        scene = context.scene
        props = scene.inhabit
        runner.state.last_error = ""
        try:
            files = key_settings(context)
            try:
                keys = client_options(files["curve_server_key"], files["curve_client_key"])
            except KeyFileError as exc:
                raise SetupError("curve_keys", str(exc)) from None
        except SetupError as exc:
            runner.state.server_status = "unreachable"
            runner.state.last_error = exc.message
            runner.redraw_if_changed()
            self.report(refusal_level(), exc.message)
            return {"CANCELLED"}

        def connected(info, error):
            if error is not None:
                runner.state.server_status = "unreachable"
                runner.state.last_error = error.message
                return
            runner.state.server_info = info
            runner.state.server_status = connected_status(info)
            try:
                fill_params_from_info(scene, info)
            except ReferenceError:
                pass  # the scene went away meanwhile

        runner.state.server_status = f"connecting to {props.server}"
        runner.connect(Connection(props.server, keys, connected, purpose="test"))
        if runner.state.last_error:
            self.report(refusal_level(), runner.state.last_error)
            return {"CANCELLED"}
        return {"FINISHED"}


class INHABIT_OT_start_server(bpy.types.Operator):
    """Start a local Inhabit server with the command set in the add-on preferences"""
    bl_idname = "inhabit.start_server"
    bl_label = "Start Local Server"

    def execute(self, context):
        prefs = get_prefs(context)
        cmd = shlex.split(prefs.server_command if prefs else "inhabit serve")
        proc = runner.state.server_process
        if proc is not None and proc.poll() is None:
            self.report({"INFO"}, "Inhabit: the local server is already running")
            return {"FINISHED"}
        try:
            runner.state.server_process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        except OSError as exc:
            msg = (f"Cannot start the local server with {' '.join(cmd)!r} ({exc.strerror}): "
                   "set the Server Command in the Inhabit add-on preferences.")
            runner.state.last_error = msg
            self.report(refusal_level(), msg)
            return {"CANCELLED"}
        runner.state.server_status = f"started local server (pid {runner.state.server_process.pid})"
        return {"FINISHED"}


class INHABIT_OT_make_proxy(bpy.types.Operator):
    """Create the capsule proxy body along the armature's bones (editable, hidden from renders)"""
    bl_idname = "inhabit.make_proxy"
    bl_label = "Make Proxy Body"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and context.scene.inhabit.armature is not None

    def execute(self, context):
        from ..scene.proxy import ensure_proxy_body
        objs = ensure_proxy_body(context.scene, context.scene.inhabit.armature)
        self.report({"INFO"}, f"Inhabit: proxy body of {len(objs)} capsules")
        return {"FINISHED"}


class INHABIT_OT_find_mapping(bpy.types.Operator):
    """Find which bone carries each keypoint (by naming convention or by structure) and show it"""
    bl_idname = "inhabit.find_mapping"
    bl_label = "Find Mapping"

    def execute(self, context):
        from .properties import refresh_mapping_rows
        self.report({"INFO"}, f"Inhabit: {refresh_mapping_rows(context.scene)}")
        return {"FINISHED"}


class INHABIT_OT_fix_joint(bpy.types.Operator):
    """Put the chosen keypoint on the chosen bone (saved with the .blend)"""
    bl_idname = "inhabit.fix_joint"
    bl_label = "Fix Joint"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .properties import refresh_mapping_rows
        p = context.scene.inhabit
        if not p.fix_bone:
            self.report({"ERROR"}, "Inhabit: pick the bone that carries the keypoint first.")
            return {"CANCELLED"}
        fix = next((f for f in p.joint_fixes if f.keypoint == p.fix_keypoint), None) or p.joint_fixes.add()
        fix.keypoint, fix.bone, fix.end = p.fix_keypoint, p.fix_bone, p.fix_end
        refresh_mapping_rows(context.scene)
        return {"FINISHED"}


class INHABIT_OT_clear_fix(bpy.types.Operator):
    """Forget one joint fix: the automatic mapping decides again"""
    bl_idname = "inhabit.clear_fix"
    bl_label = "Clear Fix"
    bl_options = {"REGISTER", "UNDO"}
    index: bpy.props.IntProperty()

    def execute(self, context):
        from .properties import refresh_mapping_rows
        p = context.scene.inhabit
        if 0 <= self.index < len(p.joint_fixes):
            p.joint_fixes.remove(self.index)
        refresh_mapping_rows(context.scene)
        return {"FINISHED"}


CLASSES = (INHABIT_OT_animate, INHABIT_OT_cancel, INHABIT_OT_test_connection, INHABIT_OT_start_server,
           INHABIT_OT_make_proxy, INHABIT_OT_find_mapping, INHABIT_OT_fix_joint, INHABIT_OT_clear_fix)
