"""The demo with the user's own character (bpy): ``inhabit demo --character``.

The room, camera and light are the procedural demo's; the character is
imported (``backend.blender.imports``), found (its armature and the
meshes it drives), stood on the floor facing the camera, and animated by its
own action or by a BVH retargeted through the keypoint map (``retarget``).
Its driven objects are linked into the demo's body collection, so the
reference, ground truth, job and metrics are exactly the procedural demo's.
"""
from __future__ import annotations

import math

import bpy
from mathutils import Matrix, Vector

from blender_addon.core import keypoint_map
from blender_addon.core.settings import SetupError
from backend.blender.imports import import_bvh, import_character
from blender_addon.scene.rig import driven_objects, map_armature

from .scene import BODY_COLLECTION, build_camera_and_light, build_room, configure_render

PLACEMENT = "CharacterPlacement"   # the reference render resets this one
SPOT = (0.25, 0.9)                  # where the character stands in the room
YAW_DEG = -15.0                     # turned a little towards the table
FPS = 24
HUMAN_HEIGHT = 1.75                 # metres: what a character of another size is scaled to
HUMAN_RANGE = (0.8, 2.5)            # heights (scene units) taken as already human-sized metres


def _armature_of(objects, path: str):
    arms = [o for o in objects if o.type == "ARMATURE"]
    if not arms:
        raise SetupError("character", f"{path!r} holds no armature: give a rigged character.")
    if len(arms) > 1:
        driving = [a for a in arms if driven_objects(bpy.context.scene, a)]
        if len(driving) != 1:
            names = ", ".join(repr(a.name) for a in (driving or arms))
            raise SetupError("character", f"{path!r} holds several candidate armatures ({names}): keep only the "
                                          "character's rig in the file.")
        return driving[0]
    return arms[0]


def _pick_action(arm, name: str | None):
    if name:
        act = bpy.data.actions.get(name)
        if act is None:
            have = sorted(a.name for a in bpy.data.actions) or ["none"]
            raise SetupError("action", f"The character has no action {name!r}; it has {', '.join(have)}: "
                                       "pass one of those to --action.")
    else:
        act = arm.animation_data.action if arm.animation_data else None
        if act is None:
            act = next(iter(sorted(bpy.data.actions, key=lambda a: a.name)), None)
    if act is None:
        return None
    ad = arm.animation_data or arm.animation_data_create()
    ad.action = act
    slots = getattr(act, "slots", None)
    if slots is not None and getattr(ad, "action_slot", None) is None and len(slots):
        want = "OB" + arm.name
        ad.action_slot = next((s for s in slots if s.identifier == want), slots[0])
    return act


def _world_bounds(objects, depsgraph):
    lo = Vector((math.inf,) * 3)
    hi = Vector((-math.inf,) * 3)
    for obj in objects:
        ev = obj.evaluated_get(depsgraph)
        for corner in ev.bound_box:
            w = ev.matrix_world @ Vector(corner)
            lo = Vector(map(min, lo, w))
            hi = Vector(map(max, hi, w))
    return lo, hi


def _facing_yaw(arm, mapping) -> float:
    """Yaw (about world Z) that turns the rig's front to -Y."""
    j = mapping.joints
    ls, rs = j.get("left_shoulder"), j.get("right_shoulder")
    if ls is None or rs is None:
        ls, rs = j.get("left_hip"), j.get("right_hip")
    if ls is None or rs is None:
        return 0.0
    mw = arm.matrix_world.to_3x3()
    left = mw @ (Vector(ls.point) - Vector(rs.point))
    # Front = left x up; facing -Y means left along +X.
    return -math.atan2(left.y, left.x)


def human_scale(height: float) -> float:
    """The factor that brings a character ``height`` units tall (rest pose) to HUMAN_HEIGHT metres,
    or 1 for one already of human size: a centimetre FBX (170 units) or a game character tens of
    units tall would otherwise dwarf the room, or fill it, and leave the camera on its feet."""
    if height <= 0:
        return 1.0
    return 1.0 if HUMAN_RANGE[0] <= height <= HUMAN_RANGE[1] else HUMAN_HEIGHT / height


def place_character(scene, arm, body, mapping):
    """Parent the character's roots under an empty that stands it on the floor
    at SPOT, facing the camera (turned YAW_DEG), brought to human height
    (``human_scale``), whatever its import transform and units."""
    roots = {o for o in [arm, *body] if o.parent is None}
    place = bpy.data.objects.new(PLACEMENT, None)
    scene.collection.objects.link(place)
    bpy.context.view_layer.update()
    for obj in roots:
        mw = obj.matrix_world.copy()
        obj.parent = place
        obj.matrix_world = mw
    saved = arm.data.pose_position
    arm.data.pose_position = "REST"
    bpy.context.view_layer.update()
    lo, hi = _world_bounds(body or [arm], bpy.context.evaluated_depsgraph_get())
    arm.data.pose_position = saved
    centre = Vector(((lo.x + hi.x) / 2, (lo.y + hi.y) / 2, lo.z))
    scale = human_scale(hi.z - lo.z)
    # Grounding, size and facing go into the parent inverse (kept for the
    # reference render, which resets the empty); the spot in the room is the empty's.
    ground = (Matrix.Rotation(_facing_yaw(arm, mapping), 4, "Z") @ Matrix.Scale(scale, 4)
              @ Matrix.Translation(-centre))
    for obj in roots:
        obj.matrix_parent_inverse = ground @ obj.matrix_parent_inverse
    place.location = (SPOT[0], SPOT[1], 0.0)
    place.rotation_euler = (0.0, 0.0, math.radians(YAW_DEG))
    bpy.context.view_layer.update()
    return place


def build_character_scene(path: str, frames: int, size: int, samples: int = 4, *, action: str | None = None,
                          motion: str | None = None):
    """Fresh file: the demo room with the imported character; returns (scene, armature)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "InhabitDemo"
    configure_render(scene, size, samples)
    objects = import_character(path, scene, fps=FPS)
    arm = _armature_of(objects, path)
    body = driven_objects(scene, arm)
    if not body:
        raise SetupError("character", f"Armature {arm.name!r} in {path!r} drives no mesh (no Armature modifier or "
                                      "parenting): bind the character's meshes to it and export again.")
    try:
        mapping = map_armature(arm)
    except keypoint_map.MappingError as exc:
        raise SetupError("character", f"{exc}.") from None
    place_character(scene, arm, body, mapping)
    start = 1
    if motion:
        src = import_bvh(motion, scene, fps=FPS)
        from .retarget import retarget_bvh
        start = retarget_bvh(src, arm, mapping, scene, frames)
    else:
        act = _pick_action(arm, action)
        if act is not None:
            start = int(math.floor(act.frame_range[0]))
    scene.frame_start, scene.frame_end = start, start + frames - 1
    coll = bpy.data.collections.new(BODY_COLLECTION)
    scene.collection.children.link(coll)
    for obj in body:
        coll.objects.link(obj)
    build_camera_and_light(scene)
    build_room(scene)
    scene.render.fps = FPS
    scene.frame_set(start)
    return scene, arm
