"""Armatures from a bone table (``humanoid.py``): the one rig builder of the demo and the tests."""
from __future__ import annotations

from typing import Callable

import bpy
from mathutils import Vector


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
