"""The demo's procedural Blender scene (bpy): a room, a rigged character, a walk.

Everything is built from primitives in code so the demo needs no asset files.
The armature uses Mixamo bone names so the add-on's keypoint mapping finds it
exactly as it would find a character downloaded from Mixamo.
"""
from __future__ import annotations

import math

import bpy  # first: bmesh and mathutils come with it
from mathutils import Vector

from .. import scene_kit as kit
from ..humanoid import HUMANOID_CENTRE, HUMANOID_LEFT, mirrored_table
from ..rig import build_armature

ARMATURE = "DemoRig"
BODY_COLLECTION = "Character"
INTERACTIVE_COLLECTION = "Interactive"
PREFIX = "mixamorig:"

COLOURS = {
    "skin": (0.80, 0.55, 0.42), "shirt": (0.10, 0.35, 0.75), "trousers": (0.12, 0.12, 0.16),
    "shoes": (0.35, 0.18, 0.08), "hair": (0.12, 0.07, 0.04), "eye": (0.03, 0.025, 0.02),
    "lips": (0.35, 0.12, 0.10),
    "floor": (0.45, 0.42, 0.38), "wall": (0.70, 0.68, 0.62), "wood": (0.45, 0.28, 0.14),
    "box": (0.85, 0.25, 0.15), "pillar": (0.60, 0.60, 0.58),
}


def bone_table() -> dict:
    """Full bone name -> (head, tail, parent full name) in rest pose."""
    return mirrored_table(HUMANOID_CENTRE, HUMANOID_LEFT, prefix=PREFIX)







def build_room(scene) -> dict:
    """Floor, back wall, table with a box (tagged interactive), a pillar."""
    room = bpy.data.collections.new("Room")
    scene.collection.children.link(room)
    inter = bpy.data.collections.new(INTERACTIVE_COLLECTION)
    scene.collection.children.link(inter)
    objs = {
        "floor": kit.box("Floor", (0, 1.5, -0.05), (12, 12, 0.1), kit.material("Floor", COLOURS["floor"]), room),
        "wall": kit.box("Wall", (0, 4.5, 2.5), (12, 0.1, 5.0), kit.material("Wall", COLOURS["wall"]), room),
        "pillar": kit.box("Pillar", (-0.75, -0.4, 1.3), (0.38, 0.38, 2.6), kit.material("Pillar", COLOURS["pillar"]),
                          room),
    }
    wood = kit.material("Wood", COLOURS["wood"])
    tx, ty = 1.35, 0.55
    objs["table"] = kit.box("TableTop", (tx, ty, 0.74), (1.0, 0.7, 0.05), wood, room)
    for i, (dx, dy) in enumerate(((-0.45, -0.3), (0.45, -0.3), (-0.45, 0.3), (0.45, 0.3))):
        kit.box(f"TableLeg{i}", (tx + dx, ty + dy, 0.36), (0.05, 0.05, 0.72), wood, room)
    objs["box"] = kit.box("Box", (tx - 0.25, ty - 0.1, 0.89), (0.25, 0.25, 0.25),
                          kit.material("BoxRed", COLOURS["box"]),
                          inter)
    return objs


def build_character(scene, colours: dict | None = None) -> bpy.types.Object:
    """Armature with Mixamo names and clothed-looking meshes skinned to it
    (``colours`` overrides the demo's skin/shirt/trousers/shoes/hair)."""
    coll = bpy.data.collections.new(BODY_COLLECTION)
    scene.collection.children.link(coll)
    table = bone_table()
    arm = build_armature(ARMATURE, table, coll)

    m = {k: kit.material(k.capitalize(), (colours or {}).get(k, v)) for k, v in COLOURS.items()
         if k in ("skin", "shirt", "trousers", "shoes", "hair", "eye", "lips")}

    def part(label, bone, p0, p1, radius, mat, depth_scale=1.0, overlap=0.35):
        obj = kit.mesh_object(label, kit.ellipsoid(p0, p1, radius, depth_scale, overlap), mat, coll)
        group = obj.vertex_groups.new(name=PREFIX + bone)
        group.add(list(range(len(obj.data.vertices))), 1.0, "REPLACE")
        obj.parent = arm
        mod = obj.modifiers.new("Armature", "ARMATURE")
        mod.object = arm
        return obj

    def b(name, end=0):
        return table[PREFIX + name][end]

    part("Head", "Head", (0, 0, 1.55), (0, 0, 1.80), 0.105, m["skin"], overlap=0.1)
    part("Hair", "Head", (0, 0.015, 1.70), (0, 0.02, 1.83), 0.11, m["hair"], overlap=0.1)
    # A face (eyes, a nose that stands out, a mouth): pose estimators read a faceless head as one
    # seen from behind, and place nose and eyes on a head with dots for eyes by guesswork.
    for side, x in (("Left", 0.036), ("Right", -0.036)):
        part(f"Eye{side}", "Head", (x, -0.088, 1.69), (x, -0.094, 1.69), 0.016, m["eye"], overlap=0.6)
    part("Nose", "Head", (0, -0.095, 1.675), (0, -0.125, 1.645), 0.018, m["skin"], overlap=0.3)
    part("Mouth", "Head", (-0.025, -0.093, 1.615), (0.025, -0.093, 1.615), 0.006, m["lips"], depth_scale=0.5)
    part("Neck", "Neck", (0, 0, 1.42), (0, 0, 1.57), 0.05, m["skin"])
    # A chest narrower than the shoulders, and shoulders across its top (collarbone to deltoid): an
    # estimator reads a ball-shaped chest with arms hung off its sides as a figure with sloping
    # shoulders, 3 cm below the joints (bench/RESULTS.md, keypoints).
    part("Chest", "Spine2", (0, 0, 1.15), (0, 0, 1.42), 0.15, m["shirt"], depth_scale=0.65, overlap=0.2)
    part("Belly", "Spine", (0, 0, 0.98), (0, 0, 1.22), 0.155, m["shirt"], depth_scale=0.7, overlap=0.2)
    part("Pelvis", "Hips", (0, 0, 0.86), (0, 0, 1.02), 0.16, m["trousers"], depth_scale=0.7, overlap=0.2)
    for side, sx in (("Left", 1.0), ("Right", -1.0)):
        part(side + "ShoulderTop", side + "Shoulder", (0.03 * sx, 0, 1.445), (0.20 * sx, 0, 1.42), 0.065, m["shirt"],
             depth_scale=0.75, overlap=0.2)
        part(side + "UpperArm", side + "Arm", b(side + "Arm"), b(side + "Arm", 1), 0.055, m["shirt"])
        part(side + "Forearm", side + "ForeArm", b(side + "ForeArm"), b(side + "ForeArm", 1), 0.045, m["skin"])
        part(side + "HandMesh", side + "Hand", b(side + "Hand"), b(side + "Hand", 1), 0.045, m["skin"], overlap=0.5)
        part(side + "Thigh", side + "UpLeg", b(side + "UpLeg"), b(side + "UpLeg", 1), 0.085, m["trousers"])
        part(side + "Shin", side + "Leg", b(side + "Leg"), b(side + "Leg", 1), 0.065, m["trousers"])
        foot0 = Vector(b(side + "Foot")) + Vector((0, 0.03, -0.04))
        part(side + "Shoe", side + "Foot", foot0, Vector(b(side + "ToeBase", 1)) + Vector((0, 0, 0.01)), 0.055,
             m["shoes"], overlap=0.3)
    return arm



def path_point(t: float):
    """Walk path on the floor: from back-left, behind the pillar, to the table."""
    start, end = Vector((-2.3, 2.4, 0)), Vector((0.55, 0.35, 0))
    return start.lerp(end, min(t, 1.0))


def animate(scene, arm, frames: int, walk_fraction: float = 0.75):
    """Walk in (legs and arms swing), pass behind the pillar, reach for the box."""
    scene.frame_start, scene.frame_end = 1, frames
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    start, end = path_point(0.0), path_point(1.0)
    # Yaw that turns the character's front (-Y) along the path: -Y rotated by
    # yaw is (sin yaw, -cos yaw).
    heading = math.atan2((end - start).x, -(end - start).y)
    walk_frames = max(1, round((frames - 1) * walk_fraction))
    x_axis = (1, 0, 0)
    for f in range(1, frames + 1):
        i = f - 1
        if i <= walk_frames:
            t = i / walk_frames
            pos = path_point(t)
            phase = 2 * math.pi * i / max(8.0, walk_frames / 2.0)  # two strides over the walk
            s = math.sin(phase)
            # Turned only a third of the way along the path: the body stays mostly
            # frontal, as the front-view reference shows it.
            yaw = heading * 0.35
            reach = 0.0
        else:
            t = 1.0
            pos = path_point(1.0)
            s = 0.0
            yaw = math.radians(25)  # turn towards the table, which is on the character's left
            reach = min(1.0, (i - walk_frames) / max(1, frames - 1 - walk_frames) * 1.5)
        arm.location = (pos.x, pos.y, 0.02 * abs(math.cos(phase)) if i <= walk_frames else 0.0)
        arm.rotation_euler = (0.0, 0.0, yaw)
        arm.keyframe_insert("location", frame=f)
        arm.keyframe_insert("rotation_euler", frame=f)
        pose = {
            "LeftUpLeg": -0.45 * s, "RightUpLeg": 0.45 * s,
            "LeftLeg": 0.6 * max(0.0, s), "RightLeg": 0.6 * max(0.0, -s),
            "LeftArm": 0.35 * s, "RightArm": -0.35 * s,
            "LeftForeArm": -0.2 - 0.1 * abs(s), "RightForeArm": -0.2 - 0.1 * abs(s),
        }
        if reach:
            pose["LeftArm"] = -1.25 * reach
            pose["LeftForeArm"] = -0.25 * reach
            pose["Spine1"] = -0.15 * reach
        for bone in ("LeftUpLeg", "RightUpLeg", "LeftLeg", "RightLeg", "LeftArm", "RightArm",
                     "LeftForeArm", "RightForeArm", "Spine1"):
            pb = arm.pose.bones[PREFIX + bone]
            pb.rotation_quaternion = kit.swing(arm, PREFIX + bone, x_axis, pose.get(bone, 0.0))
            pb.keyframe_insert("rotation_quaternion", frame=f)
    scene.frame_set(1)


def build_camera_and_light(scene):
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location = (-0.2, -4.6, 1.3)
    cam.rotation_euler = (math.radians(87), 0, 0)
    cam.data.lens = 32
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    sun.rotation_euler = (math.radians(40), math.radians(15), math.radians(-30))
    sun.data.energy = 3.0
    sun.data.angle = math.radians(8)  # soft shadows that do not need many samples
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0.35, 0.35, 0.38)
    if world.node_tree is not None:
        bg = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None)
        if bg is not None:
            bg.inputs["Color"].default_value = (0.35, 0.35, 0.38, 1.0)
    return cam


def configure_render(scene, size: int, samples: int):
    r = scene.render
    r.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False  # deterministic and cheap; the denoiser costs more than it saves here
    scene.cycles.max_bounces = 2
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"  # bit-exact strips, no AgX shift
    r.fps = 24


def build_scene(frames: int, size: int, samples: int = 4):
    """Fresh file with the whole demo scene; returns (scene, armature)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "InhabitDemo"
    configure_render(scene, size, samples)
    build_camera_and_light(scene)
    build_room(scene)
    arm = build_character(scene)
    animate(scene, arm, frames)
    return scene, arm
