"""Armatures from a bone table: the one rig builder of the demo and the tests.

A table maps full bone names to ``(head, tail, parent)`` in rest pose, in the
armature's space (metres). ``mirrored_table`` writes the usual humanoid once:
centre bones plus the left side, mirrored to the right by negating x, all
under one naming prefix (``mixamorig:`` for Mixamo, ``""`` for bare names).
"""
from __future__ import annotations

from typing import Callable

import bpy
from mathutils import Vector

SIDES = (("Left", 1.0), ("Right", -1.0))

# Rest pose (A-pose), character at the origin facing -Y (towards the camera);
# its left side is +X.  bone: (head, tail, parent)
HUMANOID_CENTRE = {
    "Hips": ((0, 0, 0.95), (0, 0, 1.05), None),
    "Spine": ((0, 0, 1.05), (0, 0, 1.18), "Hips"),
    "Spine1": ((0, 0, 1.18), (0, 0, 1.30), "Spine"),
    "Spine2": ((0, 0, 1.30), (0, 0, 1.45), "Spine1"),
    "Neck": ((0, 0, 1.45), (0, 0, 1.55), "Spine2"),
    "Head": ((0, 0, 1.55), (0, 0, 1.75), "Neck"),
    "HeadTop_End": ((0, 0, 1.75), (0, 0, 1.85), "Head"),
}
HUMANOID_LEFT = {  # mirrored to Right* by negating x
    "Shoulder": ((0.03, 0, 1.42), (0.17, 0, 1.42), "Spine2"),
    "Arm": ((0.17, 0, 1.42), (0.29, 0, 1.16), "Shoulder"),
    "ForeArm": ((0.29, 0, 1.16), (0.39, 0, 0.92), "Arm"),
    "Hand": ((0.39, 0, 0.92), (0.42, 0, 0.83), "ForeArm"),
    "UpLeg": ((0.10, 0, 0.95), (0.10, 0, 0.52), "Hips"),
    "Leg": ((0.10, 0, 0.52), (0.10, 0, 0.10), "UpLeg"),
    "Foot": ((0.10, 0, 0.10), (0.10, -0.12, 0.03), "Leg"),
    "ToeBase": ((0.10, -0.12, 0.03), (0.10, -0.20, 0.03), "Foot"),
}


def mirrored_table(centre: dict, left: dict, *, prefix: str = "mixamorig:") -> dict:
    """``{prefix + name: (head, tail, parent)}``; ``left`` entries become Left<name> and Right<name>
    (a left parent that is itself a side bone is taken on the same side)."""
    table = {}
    for name, (h, t, parent) in centre.items():
        table[prefix + name] = (tuple(h), tuple(t), prefix + parent if parent else None)
    for side, sx in SIDES:
        for name, (h, t, parent) in left.items():
            par = prefix + (side + parent if parent in left else parent)
            table[prefix + side + name] = ((h[0] * sx, h[1], h[2]), (t[0] * sx, t[1], t[2]), par)
    return table


def build_armature(name: str, table: dict, collection, *,
                   deform: Callable[[str], bool] = lambda bone: True) -> bpy.types.Object:
    """An armature object named ``name`` in ``collection`` with the table's bones.

    Bones whose head sits on the parent's tail are connected, as a modelling
    tool would make them; ``deform(name)`` says which bones deform (end bones
    and helpers usually do not)."""
    arm_data = bpy.data.armatures.new(name)
    arm = bpy.data.objects.new(name, arm_data)
    collection.objects.link(arm)
    # Edit bones need an active object in edit mode; bpy as a module has a
    # view layer, so this works headless.
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for bone, (h, t, _) in table.items():
        eb = arm_data.edit_bones.new(bone)
        eb.head, eb.tail, eb.roll = h, t, 0.0
        eb.use_deform = deform(bone)
    for bone, (_, _, parent) in table.items():
        if parent:
            eb = arm_data.edit_bones[bone]
            eb.parent = arm_data.edit_bones[parent]
            eb.use_connect = (Vector(eb.head) - Vector(eb.parent.tail)).length < 1e-6
    bpy.ops.object.mode_set(mode="OBJECT")
    return arm
