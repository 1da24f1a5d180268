"""One random training clip's scene (bpy), every choice drawn from a seeded RNG.

Built from the demo's pieces (boxes, materials, the skinned character on the
one rig of ``backend/blender/rig.py``) so the data looks like what the product
renders: a room with random floor/wall colours, furniture boxes, one or two
tagged props, sometimes an occluder between camera and path, a sun plus a
studio-light HDRI from bpy's own datafiles as world light, a character with
random proportions, clothing colours and patterns and hair (``looks.py``), a
motion -- procedural (walk along a random path, turn, optional reach; lift a
box, push a crate, sit on a box: ``interactions.py``) or a BVH retargeted
(``bvh_motion.py``) -- and a camera that sometimes moves.
"""
from __future__ import annotations

import math
import os

import bpy
import numpy as np
from mathutils import Vector

from backend.training.data.motions import SCENE_FPS

from .. import scene_kit as kit
from ..demo.scene import (BODY_COLLECTION, INTERACTIVE_COLLECTION, PREFIX, build_character, configure_render)
from .bvh_motion import drive_with_bvh
from .interactions import INTERACTIONS, animate_interaction
from .looks import dress

LEG_BONES = ("LeftUpLeg", "RightUpLeg", "LeftLeg", "RightLeg")
ARM_BONES = ("LeftArm", "RightArm", "LeftForeArm", "RightForeArm")
MOTIONS = ("walk", "walk_reach", "turn") + INTERACTIONS


def _colour(rng, lo=0.05, hi=0.9):
    return tuple(float(c) for c in rng.uniform(lo, hi, 3))


def studio_lights() -> list[str]:
    """The world HDRIs shipped inside bpy (sorted, so choices are stable)."""
    folder = bpy.utils.system_resource("DATAFILES", path=os.path.join("studiolights", "world"))
    if not folder or not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".exr"))


def _world(scene, rng):
    world = bpy.data.worlds.new("World")
    scene.world = world
    # Importance-sampling the HDRI costs ~2.7 s per render at any size (the map is
    # rebuilt every render); without it a 64 px frame takes 0.1 s and the world
    # still lights the scene through the BSDF's own samples.
    world.cycles.sampling_method = "NONE"
    hdris = studio_lights()
    nodes = world.node_tree.nodes
    bg = next(n for n in nodes if n.type == "BACKGROUND")
    bg.inputs["Strength"].default_value = float(rng.uniform(0.3, 1.0))
    if hdris:
        tex = nodes.new("ShaderNodeTexEnvironment")
        tex.image = bpy.data.images.load(hdris[int(rng.integers(len(hdris)))], check_existing=True)
        mapping = nodes.new("ShaderNodeMapping")
        coords = nodes.new("ShaderNodeTexCoord")
        mapping.inputs["Rotation"].default_value = (0, 0, float(rng.uniform(0, 2 * math.pi)))
        links = world.node_tree.links
        links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        links.new(tex.outputs["Color"], bg.inputs["Color"])
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    sun.rotation_euler = (float(rng.uniform(0.2, 0.9)), float(rng.uniform(-0.4, 0.4)), float(rng.uniform(0, 6.28)))
    sun.data.energy = float(rng.uniform(1.5, 4.0))
    sun.data.angle = math.radians(8)


def _room(scene, rng, path_mid: Vector, camera_xy: Vector) -> list:
    """Floor, walls, furniture, props (tagged) and maybe an occluder; returns the props."""
    room = bpy.data.collections.new("Room")
    scene.collection.children.link(room)
    inter = bpy.data.collections.new(INTERACTIVE_COLLECTION)
    scene.collection.children.link(inter)
    kit.box("Floor", (0, 0, -0.05), (16, 16, 0.1), kit.material("Floor", _colour(rng, 0.1, 0.7)), room)
    wall = kit.material("Wall", _colour(rng, 0.3, 0.9))
    kit.box("WallBack", (0, 5.0, 2.5), (16, 0.1, 5.0), wall, room)
    kit.box("WallSide", (float(rng.choice([-5.0, 5.0])), 0, 2.5), (0.1, 16, 5.0), wall, room)
    for i in range(int(rng.integers(1, 4))):   # furniture away from the path
        size = rng.uniform((0.4, 0.4, 0.4), (1.4, 1.0, 1.6))
        pos = Vector((float(rng.uniform(-3, 3)), float(rng.uniform(2.2, 4.2)), size[2] / 2))
        kit.box(f"Furniture{i}", tuple(pos), tuple(float(s) for s in size), kit.material(f"Furn{i}", _colour(rng)),
                room)
    props = []
    for i in range(int(rng.integers(1, 3))):   # tagged props near the path
        s = float(rng.uniform(0.2, 0.4))
        off = Vector((float(rng.uniform(-1.2, 1.2)), float(rng.uniform(0.2, 0.8)), 0))
        pos = path_mid + off
        z = float(rng.choice([s / 2, 0.75 + s / 2]))
        props.append(kit.box(f"Prop{i}", (pos.x, pos.y, z), (s, s, s), kit.material(f"Prop{i}", _colour(rng)), inter))
    if rng.random() < 0.5:   # an occluder between camera and path: occlusion the engine must respect
        t = float(rng.uniform(0.35, 0.6))
        p = camera_xy.lerp(path_mid.to_2d(), t)
        h = float(rng.uniform(0.6, 2.4))
        kit.box("Occluder", (p.x + float(rng.uniform(-0.4, 0.4)), p.y, h / 2), (float(rng.uniform(0.2, 0.5)), 0.3, h),
             kit.material("Occluder", _colour(rng)), room)
    return props


def _character(scene, rng):
    colours = {"skin": tuple(float(c) for c in rng.uniform((0.35, 0.2, 0.12), (0.95, 0.75, 0.6))),
               "shirt": _colour(rng), "trousers": _colour(rng, 0.02, 0.6), "shoes": _colour(rng, 0.02, 0.4),
               "hair": _colour(rng, 0.01, 0.5)}
    arm = build_character(scene, colours)
    height, width = float(rng.uniform(0.85, 1.1)), float(rng.uniform(0.85, 1.2))
    arm.scale = (width * height, height, height)
    looks = dress(arm, rng)
    return arm, looks


def _animate(scene, arm, rng, frames: int, start: Vector, end: Vector, motion: str):
    scene.frame_start, scene.frame_end = 1, frames
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    heading = math.atan2((end - start).x, -(end - start).y)
    stride = float(rng.uniform(6.0, 12.0))   # frames per stride
    swing = float(rng.uniform(0.25, 0.55))
    yaw0 = float(rng.uniform(-math.pi, math.pi)) if motion == "turn" else heading
    x_axis = (1, 0, 0)
    for f in range(1, frames + 1):
        t = (f - 1) / max(1, frames - 1)
        phase = 2 * math.pi * (f - 1) / stride
        s = math.sin(phase)
        if motion == "turn":
            pos, yaw, s = start, yaw0 + t * math.pi * 0.75, 0.3 * s
        else:
            pos, yaw = start.lerp(end, t), heading
        arm.location = (pos.x, pos.y, 0.02 * abs(math.cos(phase)))
        arm.rotation_euler = (0.0, 0.0, yaw)
        arm.keyframe_insert("location", frame=f)
        arm.keyframe_insert("rotation_euler", frame=f)
        pose = {"LeftUpLeg": -swing * s, "RightUpLeg": swing * s, "LeftLeg": 1.2 * swing * max(0.0, s),
                "RightLeg": 1.2 * swing * max(0.0, -s), "LeftArm": 0.7 * swing * s, "RightArm": -0.7 * swing * s,
                "LeftForeArm": -0.2 - 0.2 * abs(s), "RightForeArm": -0.2 - 0.2 * abs(s), "Spine1": 0.0}
        if motion == "walk_reach" and t > 0.5:
            reach = min(1.0, (t - 0.5) * 3)
            pose.update(LeftArm=-1.3 * reach, LeftForeArm=-0.3 * reach, Spine1=-0.15 * reach)
        for bone, angle in pose.items():
            pb = arm.pose.bones[PREFIX + bone]
            pb.rotation_quaternion = kit.swing(arm, PREFIX + bone, x_axis, angle)
            pb.keyframe_insert("rotation_quaternion", frame=f)


def _camera(scene, rng, frames: int, look_at: Vector) -> tuple:
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.lens = float(rng.uniform(28, 40))
    dist = float(rng.uniform(2.3, 3.3))   # the character fills a good part of a 64 px frame
    az = float(rng.uniform(-0.6, 0.6))          # around the -Y side of the room
    height = float(rng.uniform(0.9, 1.8))
    moving = bool(rng.random() < 0.4)
    drift = float(rng.uniform(-0.35, 0.35)) if moving else 0.0
    for f in (1, frames):
        a = az + (drift if f == frames else 0.0)
        cam.location = (look_at.x + dist * math.sin(a), look_at.y - dist * math.cos(a), height)
        direction = look_at + Vector((0, 0, 0.9)) - Vector(cam.location)
        cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
        if moving:
            cam.keyframe_insert("location", frame=f)
            cam.keyframe_insert("rotation_euler", frame=f)
    return cam, moving


def _pick_bvh(rng, frames: int, bvh: dict | None) -> dict | None:
    """With --motions, a share of the clips take a random window of a random BVH file."""
    if not bvh or not rng.random() < bvh["share"]:
        return None
    m = bvh["motions"][int(rng.integers(len(bvh["motions"])))]
    offset = int(rng.integers(0, m["frames"] - frames + 1))
    return {"file": m["file"], "sha256": m["sha256"], "frames": [offset, offset + frames - 1], "fps": SCENE_FPS,
            "path": os.path.join(bvh["folder"], m["file"])}


def build_clip_scene(rng: np.random.Generator, frames: int, size: int, samples: int, *,
                     motion: str | None = None, bvh: dict | None = None) -> dict:
    """Fresh file with one random clip's scene; returns what the renderer needs.
    ``motion`` forces one of MOTIONS (the draw still happens, so the rest of the clip is the same).
    ``bvh``: {"folder", "motions" (backend.training.data.motions.list_motions), "share"} when --motions is given."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Clip"
    configure_render(scene, size, samples)
    scene.cycles.seed = 0
    # Few samples and an un-importance-sampled HDRI make fireflies; clamping removes them.
    scene.cycles.sample_clamp_direct = 4.0
    scene.cycles.sample_clamp_indirect = 1.0
    drawn = MOTIONS[int(rng.integers(len(MOTIONS)))]
    motion = motion or drawn
    picked = _pick_bvh(rng, frames, bvh)
    if picked:
        motion = "bvh"
    start = Vector((float(rng.uniform(-1.0, 1.0)), float(rng.uniform(0.0, 1.5)), 0))
    length = float(rng.uniform(0.4, 1.4)) if motion in ("walk", "walk_reach", "push") else 0.0
    ang = float(rng.uniform(0, 2 * math.pi))
    end = start + Vector((math.cos(ang) * length, math.sin(ang) * length * 0.5, 0))
    mid = (start + end) / 2
    cam, moving = _camera(scene, rng, frames, mid)
    _world(scene, rng)
    props = _room(scene, rng, mid, cam.location.to_2d())
    arm, looks = _character(scene, rng)
    if motion in INTERACTIONS:
        props = props + animate_interaction(scene, arm, rng, frames, start, end, motion,
                                            bpy.data.collections[INTERACTIVE_COLLECTION],
                                            bpy.data.collections["Room"])
    elif picked:
        arm.location = start
        arm.rotation_euler = (0.0, 0.0, float(rng.uniform(-math.pi, math.pi)))
        bpy.context.view_layer.update()
        drive_with_bvh(scene, arm, picked.pop("path"), picked["frames"][0], frames)
    else:
        _animate(scene, arm, rng, frames, start, end, motion)
    scene.frame_set(1)
    body = sorted((o for o in bpy.data.collections[BODY_COLLECTION].all_objects if o.type == "MESH"),
                  key=lambda o: o.name)
    return dict(scene=scene, armature=arm, camera=cam, body=body, props=sorted(props, key=lambda o: o.name),
                motion=motion, camera_moving=moving, looks=looks, bvh=picked)
