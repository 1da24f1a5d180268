"""The small test scene: floor, table, camera, light, the project's humanoid rig
(``backend/blender/rig.py``, the demo's, Mixamo names under a chosen prefix)
with a capsule proxy body, and a tagged box. Built in code so tests need no assets.

Geometry (metres): camera at (0, -6, 1) looking along +Y; the rig stands at
the origin facing the camera (-Y), its left side at +X; the table is a box
between camera and rig at y = -1 covering z 0..0.7 (it hides the knees and
ankles, not the shoulders); the tagged box sits to the rig's left.
"""
from __future__ import annotations

import math

import bpy

from backend.blender.humanoid import HUMANOID_CENTRE, HUMANOID_LEFT, mirrored_table
from backend.blender.rig import build_armature

CAMERA_Y = -6.0
TABLE_TOP_Z = 0.7

def make_box(name, size, location, collection):
    mesh = bpy.data.meshes.new(name)
    sx, sy, sz = (s / 2 for s in size)
    verts = [(x * sx, y * sy, z * sz) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    collection.objects.link(obj)
    return obj


def _emission_material(name, rgb):
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # always node-based from 5.0
        mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Color"].default_value = (*rgb, 1.0)
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(emit.outputs[0], out.inputs[0])
    return mat


def build_scene(*, size: int = 64, frames: int = 3, samples: int = 2, prefix: str = "mixamorig:") -> bpy.types.Scene:
    """Reset Blender and build the test scene; returns it."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Shot"
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.engine = "CYCLES"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.view_settings.view_transform = "Standard"
    coll = scene.collection

    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.05, 0.05)
    scene.world = world

    floor = make_box("Floor", (8, 8, 0.02), (0, 0, -0.01), coll)
    floor.data.materials.append(_emission_material("FloorMat", (0.2, 0.25, 0.3)))
    table = make_box("Table", (1.0, 0.3, TABLE_TOP_Z), (0, -1.0, TABLE_TOP_Z / 2), coll)
    table.data.materials.append(_emission_material("TableMat", (0.4, 0.3, 0.1)))

    props = bpy.data.collections.new("Interactive")
    coll.children.link(props)
    box = make_box("Box", (0.3, 0.3, 0.3), (0.9, 0.0, 1.0), props)
    box.data.materials.append(_emission_material("BoxMat", (0.1, 0.6, 0.2)))

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.location = (0, CAMERA_Y, 1.0)
    cam.rotation_euler = (math.pi / 2, 0, 0)
    coll.objects.link(cam)
    scene.camera = cam

    light = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    light.rotation_euler = (0.6, 0.2, 0.3)
    coll.objects.link(light)

    arm = build_armature("Rig", mirrored_table(HUMANOID_CENTRE, HUMANOID_LEFT, prefix=prefix), coll,
                         deform=lambda bone: not bone.endswith("_End"))

    # Animation: the rig slides along X and raises its left forearm.
    for f, x in zip(range(1, frames + 1), (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)):
        arm.location = (x, 0, 0)
        arm.keyframe_insert("location", frame=f)
        pb = arm.pose.bones[prefix + "LeftForeArm"]
        pb.rotation_mode = "XYZ"
        pb.rotation_euler = (0, 0, 0.3 * (f - 1))
        pb.keyframe_insert("rotation_euler", frame=f)
    scene.frame_set(1)
    return scene


def add_colour_strip(scene, name: str, channel: int, frame_start: int, length: int):
    """An unrelated strip already on the sequencer (Blender 5.0 takes a length,
    4.x a last frame)."""
    from blender_addon import compat
    strips = compat.strips(scene.sequence_editor_create())
    if compat.IS_5:
        return strips.new_effect(name=name, type="COLOR", channel=channel, frame_start=frame_start, length=length)
    return strips.new_effect(name=name, type="COLOR", channel=channel, frame_start=frame_start,
                             frame_end=frame_start + length)


def colour_proxy(objects, rgb=(1.0, 0.0, 0.0)):
    """Give proxy capsules a loud emissive colour so tests can look for it."""
    mat = _emission_material("ProxyRed", rgb)
    for o in objects:
        o.data.materials.clear()
        o.data.materials.append(mat)


def raycast_silhouette(scene, objects, width: int, height: int):
    """Ground truth for the passes: cast one ray per pixel centre at ``objects``.

    Returns (mask bool [H, W], planar depth float [H, W], inf where missed).
    Independent of the renderer: only mesh geometry and the camera frame.
    """
    import numpy as np
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    depsgraph = bpy.context.evaluated_depsgraph_get()
    verts, polys = [], []
    for obj in objects:
        ev = obj.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        mw = ev.matrix_world
        base = len(verts)
        verts.extend(mw @ v.co for v in mesh.vertices)
        polys.extend([base + i for i in p.vertices] for p in mesh.polygons)
        ev.to_mesh_clear()
    tree = BVHTree.FromPolygons(verts, polys)
    cam = scene.camera
    r = scene.render
    saved = (r.resolution_x, r.resolution_y, r.resolution_percentage)
    r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100  # view_frame uses the aspect
    try:
        tr, br, bl, tl = cam.data.view_frame(scene=scene)
    finally:
        r.resolution_x, r.resolution_y, r.resolution_percentage = saved
    rot = cam.matrix_world.to_3x3()
    origin = cam.matrix_world.translation
    forward = rot @ Vector((0, 0, -1))
    mask = np.zeros((height, width), bool)
    depth = np.full((height, width), np.inf)
    for py in range(height):
        for px in range(width):
            u, v = (px + 0.5) / width, (py + 0.5) / height
            local = tl + (tr - tl) * u + (bl - tl) * v
            hit, _n, _i, _d = tree.ray_cast(origin, (rot @ local).normalized())
            if hit is not None:
                mask[py, px] = True
                depth[py, px] = (hit - origin).dot(forward)
    return mask, depth
