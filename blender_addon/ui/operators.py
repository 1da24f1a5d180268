"""Operators: Animate, Cancel, Test Connection, Start Local Server, Make Proxy Body."""
from __future__ import annotations

import shlex
import subprocess

import bpy

from ..core.settings import SetupError
from . import runner
from .preferences import get_prefs
from .properties import fill_params_from_info, settings_from_scene


class INHABIT_OT_animate(bpy.types.Operator):
    """Render the passes, send them to the server and put the result on the sequencer"""
    bl_idname = "inhabit.animate"
    bl_label = "Animate"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not runner.running()

    def execute(self, context):
        from ..session import session_for
        scene = context.scene  # recorded now: the strip goes here whatever happens later
        try:
            settings = settings_from_scene(scene)
            session = session_for(scene, settings)
        except SetupError as exc:
            runner.state.last_error = exc.message
            self.report({"ERROR"}, exc.message)
            return {"CANCELLED"}
        runner.start(session)
        self.report({"INFO"}, f"Inhabit: job started ({settings.frame_count} frames)")
        return {"FINISHED"}


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

    def execute(self, context):
        from ..core.curve_keys import KeyFileError, client_options
        from ..session import fetch_server_info
        from .preferences import key_settings
        props = context.scene.inhabit
        try:
            files = key_settings(context)
            try:
                keys = client_options(files["curve_server_key"], files["curve_client_key"])
            except KeyFileError as exc:
                raise SetupError("curve_keys", str(exc)) from None
            info = fetch_server_info(props.server, **keys)
        except SetupError as exc:
            runner.state.server_status = "unreachable"
            runner.state.last_error = exc.message
            self.report({"ERROR"}, exc.message)
            return {"CANCELLED"}
        runner.state.server_info = info
        names = [e.get("name") for e in info.get("engines", [])]
        runner.state.server_status = f"connected: {info.get('device', '?')}, engines {', '.join(map(str, names))}"
        fill_params_from_info(context.scene, info)
        self.report({"INFO"}, "Inhabit: " + runner.state.server_status)
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
            self.report({"ERROR"}, msg)
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
