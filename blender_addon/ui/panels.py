"""Sidebar panels (3D Viewport and Sequencer, tab "Inhabit"); one draw function."""
from __future__ import annotations

import bpy

from . import runner


def draw_inhabit(layout, context):
    scene = context.scene
    p = scene.inhabit

    box = layout.box()
    box.label(text="Server", icon="URL")
    box.prop(p, "server", text="")
    row = box.row(align=True)
    row.operator("inhabit.test_connection", icon="LINKED")
    row.operator("inhabit.start_server", icon="PLAY")
    box.label(text=runner.state.server_status)
    box.prop(p, "engine")
    for prm in p.params:
        field = {"int": "int_value", "float": "float_value", "bool": "bool_value"}.get(prm.kind, "str_value")
        box.prop(prm, field, text=prm.name.replace("_", " ").title())

    box = layout.box()
    box.label(text="Character", icon="ARMATURE_DATA")
    box.prop(p, "reference_path")
    box.prop(p, "armature")
    row = box.row(align=True)
    row.prop(p, "body")
    if p.body is None:
        row.operator("inhabit.make_proxy", text="", icon="MESH_CAPSULE")
    box.prop(p, "objects_collection")
    draw_mapping(box, p)
    box.prop(p, "reference_keypoints_path")

    box = layout.box()
    box.label(text="Shot", icon="RENDER_ANIMATION")
    box.prop(p, "use_scene_range")
    if not p.use_scene_range:
        row = box.row(align=True)
        row.prop(p, "frame_start")
        row.prop(p, "frame_end")
    box.prop(p, "use_scene_resolution")
    if not p.use_scene_resolution:
        row = box.row(align=True)
        row.prop(p, "width")
        row.prop(p, "height")
    row = box.row(align=True)
    row.prop(p, "seed")
    row.prop(p, "samples")
    row.prop(p, "denoise")

    box = layout.box()
    box.label(text="Output", icon="SEQUENCE")
    box.prop(p, "output_dir")
    box.prop(p, "channel")

    col = layout.column()
    row = col.row(align=True)
    row.scale_y = 1.4
    row.operator("inhabit.animate", icon="PLAY")
    row.operator("inhabit.cancel", icon="CANCEL")
    session = runner.state.session
    if session is not None:
        job = session.job
        prog = job.progress
        frac = prog.received / prog.total if prog.total else 0.0
        if hasattr(col, "progress"):
            col.progress(factor=frac, text=prog.text())
        else:
            col.label(text=f"{int(frac * 100)}% {prog.text()}")
    if runner.state.last_result:
        col.label(text=runner.state.last_result, icon="CHECKMARK")
    if runner.state.last_error:
        err = col.box()
        err.alert = True
        # Long sentences: wrap on words so the whole message is readable.
        words, line = runner.state.last_error.split(), ""
        for w in words:
            if len(line) + len(w) > 48:
                err.label(text=line)
                line = ""
            line = f"{line} {w}".strip()
        if line:
            err.label(text=line, icon="ERROR")


def draw_mapping(layout, p):
    """The mapping found (keypoint -> bone, by convention / structure / user) and the joint fixes."""
    sub = layout.box()
    row = sub.row(align=True)
    row.label(text="Bone Mapping", icon="BONE_DATA")
    row.operator("inhabit.find_mapping", text="", icon="FILE_REFRESH")
    if p.mapping_summary:
        sub.label(text=p.mapping_summary)
    col = sub.column(align=True)
    for r in p.mapping_rows:
        line = col.row(align=True)
        line.label(text=r.keypoint.replace("_", " "))
        line.label(text=r.bone or "-", icon="ERROR" if r.how == "missing" else "NONE")
        line.label(text=r.how)
    fix = sub.row(align=True)
    fix.prop(p, "fix_keypoint", text="")
    if p.armature is not None:
        fix.prop_search(p, "fix_bone", p.armature.data, "bones", text="")
    else:
        fix.prop(p, "fix_bone", text="")
    fix.prop(p, "fix_end", text="")
    fix.operator("inhabit.fix_joint", text="", icon="CHECKMARK")
    for i, f in enumerate(p.joint_fixes):
        line = sub.row(align=True)
        line.label(text=f"{f.keypoint} -> {f.bone} ({f.end})", icon="MODIFIER")
        line.operator("inhabit.clear_fix", text="", icon="X").index = i
    sub.prop(p, "keypoint_map")


class _InhabitPanel:
    """The same panel in two editors: Blender needs one Panel class per space."""
    bl_label = "Inhabit"
    bl_region_type = "UI"
    bl_category = "Inhabit"

    def draw(self, context):
        draw_inhabit(self.layout, context)


class VIEW3D_PT_inhabit(_InhabitPanel, bpy.types.Panel):
    bl_idname = "VIEW3D_PT_inhabit"
    bl_space_type = "VIEW_3D"


class SEQUENCER_PT_inhabit(_InhabitPanel, bpy.types.Panel):
    bl_idname = "SEQUENCER_PT_inhabit"
    bl_space_type = "SEQUENCE_EDITOR"


CLASSES = (VIEW3D_PT_inhabit, SEQUENCER_PT_inhabit)
