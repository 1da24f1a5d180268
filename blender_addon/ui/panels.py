"""Sidebar panels (3D Viewport and Sequencer, tab "Inhabit").

The main panel holds what a user watches during a shot (Animate, Cancel,
progress, the result, errors in full) so it stays in view whatever is
open below; the settings are sub-panels, the bone mapping closed by default.
"""
from __future__ import annotations

import bpy

from . import runner
from .notice import chars_for, draw_sentence


def draw_status(layout, context):
    """Animate / Cancel, then what is going on now, then how the last shot ended."""
    col = layout.column()
    row = col.row(align=True)
    row.scale_y = 1.4
    row.operator("inhabit.animate", icon="PLAY")
    row.operator("inhabit.cancel", icon="CANCEL")
    width = chars_for(context)
    state = runner.state
    if state.connecting is not None:
        col.label(text=f"Connecting to {state.connecting.address}...", icon="TIME")
    session = state.session
    if session is not None:
        prog = session.job.progress
        frac = prog.received / prog.total if prog.total else 0.0
        bar = f"{prog.received}/{prog.total} frames back"
        if hasattr(col, "progress"):  # the bar holds the count; the whole line goes below, wrapped
            col.progress(factor=frac, text=bar)
        else:
            col.label(text=f"{int(frac * 100)}% {bar}")
        draw_sentence(col, prog.text(), width, icon="NONE")
    for note in state.notes:
        draw_sentence(col, note, width, icon="INFO")
    if runner.take_removed():
        draw_sentence(col, f"The take folder {state.take_dir} was removed from disk; its strip shows missing "
                           "frames.", width, icon="TRASH")
    elif state.last_result:
        draw_sentence(col, state.last_result, width, icon="CHECKMARK")
    if state.last_error:
        err = col.box()
        err.alert = True
        draw_sentence(err, state.last_error, width)


def draw_server(layout, context):
    p = context.scene.inhabit
    layout.prop(p, "server", text="")
    row = layout.row(align=True)
    row.operator("inhabit.test_connection", icon="LINKED")
    row.operator("inhabit.start_server", icon="PLAY")
    draw_sentence(layout, runner.state.server_status, chars_for(context), icon="NONE")
    layout.prop(p, "engine")
    for prm in p.params:
        field = {"int": "int_value", "float": "float_value", "bool": "bool_value"}.get(prm.kind, "str_value")
        layout.prop(prm, field, text=prm.name.replace("_", " ").title())


def draw_character(layout, context):
    p = context.scene.inhabit
    layout.prop(p, "reference_path")
    layout.prop(p, "armature")
    row = layout.row(align=True)
    row.prop(p, "body")
    if p.body is None:
        row.operator("inhabit.make_proxy", text="", icon="MESH_CAPSULE")
    layout.prop(p, "objects_collection")
    layout.prop(p, "reference_keypoints_path")


def draw_shot(layout, context):
    p = context.scene.inhabit
    layout.prop(p, "use_scene_range")
    if not p.use_scene_range:
        row = layout.row(align=True)
        row.prop(p, "frame_start")
        row.prop(p, "frame_end")
    layout.prop(p, "use_scene_resolution")
    if not p.use_scene_resolution:
        row = layout.row(align=True)
        row.prop(p, "width")
        row.prop(p, "height")
    row = layout.row(align=True)
    row.prop(p, "seed")
    row.prop(p, "samples")
    row.prop(p, "denoise")


def draw_output(layout, context):
    p = context.scene.inhabit
    layout.prop(p, "output_dir")
    layout.prop(p, "channel")


def draw_mapping(layout, p):
    """The mapping found (keypoint -> bone, by convention / structure / user) and the joint fixes."""
    sub = layout
    sub.operator("inhabit.find_mapping", icon="FILE_REFRESH")
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


# (label, draw, options, parent key): the panels in sidebar order.
SECTIONS = (
    ("Server", draw_server, set(), ""),
    ("Character", draw_character, set(), ""),
    ("Bone Mapping", lambda layout, context: draw_mapping(layout, context.scene.inhabit), {"DEFAULT_CLOSED"},
     "character"),
    ("Shot", draw_shot, set(), ""),
    ("Output", draw_output, set(), ""),
)


def _section_draw(draw):
    def draw_section(self, context):  # Blender checks that draw takes exactly (self, context)
        draw(self.layout, context)
    return draw_section


def _panels_for(space: str, prefix: str) -> list:
    """The main panel and its sub-panels for one editor: Blender needs one Panel class per space."""
    main_id = f"{prefix}_PT_inhabit"

    def draw_main(self, context):
        draw_status(self.layout, context)

    classes = [type(main_id, (bpy.types.Panel,), {
        "bl_idname": main_id, "bl_label": "Inhabit", "bl_space_type": space, "bl_region_type": "UI",
        "bl_category": "Inhabit", "draw": draw_main})]
    for label, draw, options, parent in SECTIONS:
        key = label.lower().replace(" ", "_")
        classes.append(type(f"{main_id}_{key}", (bpy.types.Panel,), {
            "bl_idname": f"{main_id}_{key}", "bl_label": label, "bl_space_type": space, "bl_region_type": "UI",
            "bl_category": "Inhabit", "bl_parent_id": f"{main_id}_{parent}" if parent else main_id,
            "bl_options": set(options), "draw": _section_draw(draw)}))
    return classes


CLASSES = tuple(_panels_for("VIEW_3D", "VIEW3D") + _panels_for("SEQUENCE_EDITOR", "SEQUENCER"))
