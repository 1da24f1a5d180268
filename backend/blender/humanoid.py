"""The one humanoid skeleton, as bone tables (bpy-free): the demo character, the
training clips, the tests' scenes and the tests' bones-only naming rigs all
take their proportions from here.

A table maps full bone names to ``(head, tail, parent)`` in rest pose, in the
armature's space (metres). ``mirrored_table`` writes the usual humanoid once:
centre bones plus the left side, mirrored to the right by negating x, all
under one naming prefix (``mixamorig:`` for Mixamo, ``""`` for bare names).
"""
from __future__ import annotations

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
