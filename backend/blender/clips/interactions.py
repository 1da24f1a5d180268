"""Procedural motions with a tagged object (bpy): lift a box, push a crate, sit on a box.

Each motion is a pure function of the clip time t in [0, 1] (armature
location, yaw, bone angles). The object is placed from the posed skeleton
itself, not from guessed offsets: the lifted box sits between the two hands
(its width is their distance, so both palms touch its sides) and rests on a
stand until the grasp; the pushed crate's near face touches the hands and
its base the floor; the seat's top is where the lowered hips' thighs rest.
So the labels (object masks, depth) and the contact they show agree exactly.
"""
from __future__ import annotations

import math

import bpy
from mathutils import Vector

from .. import scene_kit as kit
from ..demo.scene import PREFIX

INTERACTIONS = ("lift", "push", "sit")
POSED = ("LeftUpLeg", "RightUpLeg", "LeftLeg", "RightLeg", "LeftArm", "RightArm", "LeftForeArm", "RightForeArm",
         "Spine1")
HAND_RADIUS = 0.045          # the hand mesh's radius in backend/blender/demo/scene.py
THIGH_RADIUS = 0.085
GRASP_T = 0.35               # lift: the hands close on the box here, and it moves with them after


def _smooth(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def _apply(arm, loc, yaw: float, angles: dict) -> None:
    arm.location = loc
    arm.rotation_euler = (0.0, 0.0, yaw)
    for bone in POSED:
        name = PREFIX + bone
        arm.pose.bones[name].rotation_quaternion = kit.swing(arm, name, (1, 0, 0), angles.get(bone, 0.0))
    bpy.context.view_layer.update()


def _key(arm, f: int) -> None:
    arm.keyframe_insert("location", frame=f)
    arm.keyframe_insert("rotation_euler", frame=f)
    for bone in POSED:
        arm.pose.bones[PREFIX + bone].keyframe_insert("rotation_quaternion", frame=f)


def _joint(arm, bone: str, tail: bool = False) -> Vector:
    pb = arm.pose.bones[PREFIX + bone]
    return arm.matrix_world @ (pb.tail if tail else pb.head)


def _hands(arm) -> tuple[Vector, Vector]:
    return tuple((_joint(arm, f"{s}Hand") + _joint(arm, f"{s}Hand", True)) / 2 for s in ("Left", "Right"))


def _forward(yaw: float) -> Vector:
    return Vector((math.sin(yaw), -math.cos(yaw), 0.0))   # the character's front is -Y, turned by yaw


def _lift_angles(t: float) -> dict:
    bend = _smooth(t / GRASP_T)                 # reach down and forward to the box
    raise_ = _smooth((t - GRASP_T) / (1 - GRASP_T))   # then bring it up to the chest
    arm_a = -0.75 * bend - 0.55 * raise_
    fore = -0.35 * bend - 0.75 * raise_
    return {"LeftArm": arm_a, "RightArm": arm_a, "LeftForeArm": fore, "RightForeArm": fore,
            "Spine1": 0.3 * bend * (1 - raise_)}


def _push_angles(phase: float, swing: float) -> dict:
    s = math.sin(phase)
    return {"LeftUpLeg": -swing * s, "RightUpLeg": swing * s, "LeftLeg": 1.2 * swing * max(0.0, s),
            "RightLeg": 1.2 * swing * max(0.0, -s), "LeftArm": -1.0, "RightArm": -1.0,
            "LeftForeArm": -0.35, "RightForeArm": -0.35, "Spine1": 0.15}


def _sit_angles(t: float) -> dict:
    k = _smooth((t - 0.15) / 0.65)
    return {"LeftUpLeg": -1.45 * k, "RightUpLeg": -1.45 * k, "LeftLeg": 1.45 * k, "RightLeg": 1.45 * k,
            "LeftArm": -0.3 * k, "RightArm": -0.3 * k, "LeftForeArm": -0.5 * k, "RightForeArm": -0.5 * k,
            "Spine1": 0.2 * k}


def _ankles(arm) -> Vector:
    return (_joint(arm, "LeftFoot") + _joint(arm, "RightFoot")) / 2


def _grounded(arm, loc: Vector, yaw: float, angles: dict, ankles: Vector) -> Vector:
    """The location that keeps the ankles where they stood: the hips go down and back, the feet stay."""
    _apply(arm, loc, yaw, angles)
    return loc - (_ankles(arm) - ankles)


def animate_interaction(scene, arm, rng, frames: int, start: Vector, end: Vector, motion: str, props_collection,
                        furniture_collection) -> list:
    """Key ``motion`` on ``arm`` over frames 1..frames; return the tagged object(s) it touches."""
    scene.frame_start, scene.frame_end = 1, frames
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    colour = tuple(float(c) for c in rng.uniform(0.05, 0.9, 3))
    ts = [(f - 1) / max(1, frames - 1) for f in range(1, frames + 1)]
    if motion == "push":
        return [_push(arm, rng, ts, start, end, colour, props_collection)]
    yaw = float(rng.uniform(-math.pi, math.pi))
    base = Vector((start.x, start.y, 0.0))
    if motion == "lift":
        return [_lift(arm, rng, ts, base, yaw, colour, props_collection, furniture_collection)]
    if motion == "sit":
        return [_sit(arm, rng, ts, base, yaw, colour, props_collection)]
    raise ValueError(f"unknown interaction {motion!r}")


def _lift(arm, rng, ts, base, yaw, colour, props, furniture):
    _apply(arm, base, yaw, _lift_angles(GRASP_T))
    lh, rh = _hands(arm)
    width = (lh - rh).length - 2 * HAND_RADIUS
    height, depth = float(rng.uniform(0.2, 0.32)), float(rng.uniform(0.2, 0.32))
    box = kit.box("Carried", (0, 0, 0), (width, depth, height), kit.material("Carried", colour), props)
    box.rotation_euler = (0.0, 0.0, yaw)
    grasp = (lh + rh) / 2
    stand_top = grasp.z - height / 2
    stand = kit.box("Stand", (0, 0, 0), (width * 0.9, depth * 1.2, stand_top),
                 kit.material("Stand", tuple(float(c) for c in rng.uniform(0.1, 0.8, 3))), furniture)
    stand.location, stand.rotation_euler = (grasp.x, grasp.y, stand_top / 2), (0.0, 0.0, yaw)
    for f, t in enumerate(ts, start=1):
        _apply(arm, base, yaw, _lift_angles(t))
        _key(arm, f)
        box.location = sum(_hands(arm), Vector()) / 2 if t >= GRASP_T else grasp
        box.keyframe_insert("location", frame=f)
    return box


def _push(arm, rng, ts, start, end, colour, props):
    heading = math.atan2((end - start).x, -(end - start).y)
    stride, swing = float(rng.uniform(8.0, 14.0)), float(rng.uniform(0.2, 0.4))
    fwd = _forward(heading)
    _apply(arm, Vector(start), heading, _push_angles(0.0, swing))
    lh, rh = _hands(arm)
    width = (lh - rh).length + float(rng.uniform(0.05, 0.3))
    depth = float(rng.uniform(0.35, 0.6))
    height = (lh.z + rh.z) / 2 + float(rng.uniform(0.05, 0.2))
    crate = kit.box("Pushed", (0, 0, 0), (width, depth, height), kit.material("Pushed", colour), props)
    crate.rotation_euler = (0.0, 0.0, heading)
    for f, t in enumerate(ts, start=1):
        phase = 2 * math.pi * (f - 1) / stride
        _apply(arm, start.lerp(end, t), heading, _push_angles(phase, swing))
        _key(arm, f)
        mid = sum(_hands(arm), Vector()) / 2
        # The near face touches the palms; the base slides on the floor.
        c = mid + fwd * (HAND_RADIUS + depth / 2)
        crate.location = (c.x, c.y, height / 2)
        crate.keyframe_insert("location", frame=f)
    return crate


def _sit(arm, rng, ts, base, yaw, colour, props):
    _apply(arm, base, yaw, {})
    ankles = _ankles(arm)
    seated = _grounded(arm, base, yaw, _sit_angles(1.0), ankles)
    _apply(arm, seated, yaw, _sit_angles(1.0))
    hips = _joint(arm, "Hips")
    thigh_r = THIGH_RADIUS * arm.scale.z
    top = hips.z - thigh_r
    # From just behind the seated hips to short of the standing shins (the character starts standing in front).
    depth, width = float(rng.uniform(0.3, 0.4)), float(rng.uniform(0.4, 0.7))
    centre = hips + _forward(yaw) * (depth / 2 - 0.15)
    seat = kit.box("Seat", (0, 0, 0), (width, depth, top), kit.material("Seat", colour), props)
    seat.location, seat.rotation_euler = (centre.x, centre.y, top / 2), (0.0, 0.0, yaw)
    for f, t in enumerate(ts, start=1):
        angles = _sit_angles(t)
        loc = _grounded(arm, base, yaw, angles, ankles)
        _apply(arm, loc, yaw, angles)
        _key(arm, f)
    return seat
