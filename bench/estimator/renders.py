"""Renders for the estimator check (bpy): a character alone on a plain
background, seen from the front and at 45 degrees of its own facing, framed
from its posed bounds, with the keypoints Inhabit sends for each image and
the rig's own joints (the placement before the estimator convention).

Workbench renders: flat studio light, no samples, about a second each.
"""
from __future__ import annotations

import math
import os

import bpy
import numpy as np
from mathutils import Vector

from blender_addon.core import conventions
from blender_addon.scene import keypoints as kp_mod
from blender_addon.scene.rig import driven_objects

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BCN = os.path.join(REPO, "tests", "assets", "BCN_Epileptic.glb")
CMU = os.path.join(REPO, "tests", "assets", "cmu_01_01_start.bvh")
BOXING = os.path.join(REPO, "tests", "assets", "boxing_toes_start.bvh")
RED_ECLIPSE = os.path.join(REPO, "tests", "assets", "redeclipse_player.glb")

# name -> what to build: the procedural demo character with a hair style, or a file driven by a BVH.
CASES = {
    "demo, short hair": {"hair": "short"},
    "demo, long hair": {"hair": "long"},
    "BCN_Epileptic, CMU walk": {"path": BCN, "motion": CMU},
    "BCN_Epileptic, boxing": {"path": BCN, "motion": BOXING},
    "Red Eclipse player, CMU walk": {"path": RED_ECLIPSE, "motion": CMU},
}
FILL = 0.8          # the character's height as a fraction of the image's
NAMES = conventions.KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES


def build_case(name: str, frames: int):
    """A fresh file with the character of case ``name``; returns (scene, armature, scene frames to render)."""
    case = CASES[name]
    if "path" in case:
        from backend.blender.demo.character import build_character_scene
        from backend.blender.demo.scene import BODY_COLLECTION
        scene, arm = build_character_scene(case["path"], 30, 64, motion=case.get("motion"))
        body = set(bpy.data.collections[BODY_COLLECTION].all_objects) | {arm}
        for obj in scene.objects:
            if obj not in body and obj.type != "CAMERA":
                obj.hide_render = True
        start, end = scene.frame_start, scene.frame_end
    else:
        from backend.blender.clips.looks import apply_hair
        from backend.blender.demo.scene import animate, build_character
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        arm = build_character(scene)
        apply_hair(arm, case["hair"])
        animate(scene, arm, 24)
        start, end = 1, 24
    wanted = np.linspace(start, end, frames + 2)[1:-1] if frames > 1 else [(start + end) / 2]
    return scene, arm, [int(round(f)) for f in wanted]


def _setup_render(scene, size: int):
    r = scene.render
    r.engine = "BLENDER_WORKBENCH"
    r.resolution_x = r.resolution_y = size
    r.resolution_percentage = 100
    r.film_transparent = False
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "TEXTURE"   # the character's own colours (textures, else material colours)
    scene.view_settings.view_transform = "Standard"
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0.55, 0.57, 0.6)
    cam = bpy.data.objects.get("EstimatorCamera")
    if cam is None:
        cam = bpy.data.objects.new("EstimatorCamera", bpy.data.cameras.new("EstimatorCamera"))
        scene.collection.objects.link(cam)
    cam.data.lens = 50
    cam.data.sensor_fit = "VERTICAL"
    scene.camera = cam
    return cam


def _bounds(objects):
    deps = bpy.context.evaluated_depsgraph_get()
    pts = []
    for obj in objects:
        ev = obj.evaluated_get(deps)
        mesh = ev.to_mesh()
        m = ev.matrix_world
        pts.extend(m @ v.co for v in mesh.vertices)
        ev.to_mesh_clear()
    a = np.array([tuple(p) for p in pts])
    return a.min(0), a.max(0)


def _aim(cam, arm, mapping, objects, view_deg: float):
    """Place ``cam`` at ``view_deg`` from the character's facing, the body filling FILL of the height."""
    posed = kp_mod.PosedRig(arm, mapping)
    ls, rs = posed.world(mapping.joints["left_shoulder"]), posed.world(mapping.joints["right_shoulder"])
    left = ls - rs
    left.z = 0
    left.normalize()
    front = left.cross(Vector((0, 0, 1)))   # left x up
    lo, hi = _bounds(objects)
    centre = Vector(((lo + hi) / 2).tolist())
    height = float(hi[2] - lo[2])
    a = math.radians(view_deg)
    direction = front * math.cos(a) + left * math.sin(a)
    fov = 2 * math.atan(cam.data.sensor_height / 2 / cam.data.lens)
    dist = height / FILL / 2 / math.tan(fov / 2) + float(np.ptp((lo - hi)[:2])) / 2
    cam.location = centre + direction * dist
    cam.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    bpy.context.view_layer.update()


def render_case(name: str, out_dir: str, *, frames: int = 3, views=(0.0, 45.0), size: int = 320) -> list[dict]:
    """Render case ``name``; one record per image: image path, case, view, frame, and the keypoints
    ([20, 4]: OpenPose-18 then the two toes) as sent now ("after") and as the rig's joints ("before")."""
    scene, arm, scene_frames = build_case(name, frames)
    cam = _setup_render(scene, size)
    mapping = kp_mod.resolve_for(arm)
    objects = [o for o in driven_objects(scene, arm) if o.type == "MESH"]
    out = []
    for f in scene_frames:
        scene.frame_set(f)
        for view in views:
            _aim(cam, arm, mapping, objects, view)
            path = os.path.join(out_dir, f"{name.replace(',', '').replace(' ', '_')}_f{f}_v{int(view)}.png")
            scene.render.filepath = path
            bpy.ops.render.render(write_still=True)
            args = (scene, cam, arm, mapping, size, size, None)
            after = np.concatenate([kp_mod.project_keypoints(*args), kp_mod.project_toes(*args)])
            before = kp_mod.project_rig_joints(scene, cam, arm, mapping, size, size, NAMES)
            out.append({"image": path, "case": name, "view": view, "frame": f, "after": after, "before": before,
                        "notes": list(mapping.notes)})
    return out
