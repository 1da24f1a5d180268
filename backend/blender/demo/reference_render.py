"""The demo's reference image: the character alone, rest pose, transparent
background, plus its exact keypoints as a JSON sidecar ([18, 4] as in the
protocol), projected with the very camera that rendered it."""
from __future__ import annotations

import json
import math
import os

import bpy
import numpy as np
from mathutils import Vector

from blender_addon.scene import keypoints as kp_mod

from .scene import BODY_COLLECTION


FILL = 0.85   # the character's height as a fraction of the reference image's


def _frame_on(cam, objects) -> None:
    """Aim the front camera at the objects' bounds (rest pose, at the origin), their height FILL of the
    image's, whatever the character's size."""
    deps = bpy.context.evaluated_depsgraph_get()
    pts = []
    for obj in objects:
        ev = obj.evaluated_get(deps)
        pts.extend(ev.matrix_world @ Vector(c) for c in ev.bound_box)
    lo = Vector([min(p[i] for p in pts) for i in range(3)])
    hi = Vector([max(p[i] for p in pts) for i in range(3)])
    height = max(hi.z - lo.z, 1e-6)
    half_fov = math.atan(cam.data.sensor_width / 2 / cam.data.lens)
    dist = height / FILL / 2 / math.tan(half_fov) + (hi.y - lo.y) / 2
    cam.location = ((lo.x + hi.x) / 2, lo.y - dist + (hi.y - lo.y) / 2, (lo.z + hi.z) / 2)
    cam.data.clip_start, cam.data.clip_end = dist * 0.01, dist * 10 + height


def render_reference(scene, arm, out_dir: str, size: int, placement=None) -> tuple[str, str, np.ndarray]:
    """Write ``reference.png`` (RGBA) and ``reference_keypoints.json``; return
    their paths and the keypoints. The scene is left as it was found.

    ``placement``: the object whose transform puts the character in the room
    (default the armature itself); it is zeroed so the character stands at the
    origin facing the reference camera."""
    place = placement or arm
    body = set(bpy.data.collections[BODY_COLLECTION].all_objects)
    hidden = [o for o in scene.objects if o not in body and o.type != "LIGHT" and not o.hide_render]
    cam = bpy.data.objects.new("ReferenceCamera", bpy.data.cameras.new("ReferenceCamera"))
    scene.collection.objects.link(cam)
    cam.rotation_euler = (math.radians(90), 0, 0)
    cam.data.lens = 50
    saved = dict(camera=scene.camera, film=scene.render.film_transparent, frame=scene.frame_current,
                 pose=arm.data.pose_position, action=arm.animation_data.action if arm.animation_data else None,
                 loc=tuple(place.location), rot=tuple(place.rotation_euler), path=scene.render.filepath,
                 mode=scene.render.image_settings.color_mode)
    try:
        for o in hidden:
            o.hide_render = True
        if arm.animation_data:
            arm.animation_data.action = None  # rest pose at the origin, whatever frame is current
        place.location, place.rotation_euler = (0, 0, 0), (0, 0, 0)
        arm.data.pose_position = "REST"
        bpy.context.view_layer.update()
        _frame_on(cam, [o for o in body if o.type == "MESH"] or [arm])
        scene.camera = cam
        scene.render.film_transparent = True
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGBA"
        png = os.path.join(out_dir, "reference.png")
        scene.render.filepath = png
        bpy.context.view_layer.update()
        bpy.ops.render.render(write_still=True)
        mapping = kp_mod.resolve_for(arm, None)
        kps = kp_mod.project_keypoints(scene, cam, arm, mapping, size, size, None)
    finally:
        for o in hidden:
            o.hide_render = False
        scene.camera = saved["camera"]
        scene.render.film_transparent = saved["film"]
        scene.render.filepath = saved["path"]
        scene.render.image_settings.color_mode = saved["mode"]
        arm.data.pose_position = saved["pose"]
        if arm.animation_data:
            arm.animation_data.action = saved["action"]
        place.location, place.rotation_euler = saved["loc"], saved["rot"]
        bpy.data.objects.remove(cam)
        scene.frame_set(saved["frame"])
    kp_path = os.path.join(out_dir, "reference_keypoints.json")
    with open(kp_path, "w") as fh:
        json.dump(np.asarray(kps, np.float32).round(3).tolist(), fh)
    return png, kp_path, kps


def render_ground_truth(scene, frames: list[int], out_dir: str, progress=None) -> list[str]:
    """The real character rendered in the scene: what a perfect engine would return."""
    os.makedirs(out_dir, exist_ok=True)
    saved_path, saved_mode = scene.render.filepath, scene.render.image_settings.color_mode
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    paths = []
    try:
        for n, f in enumerate(frames):
            scene.frame_set(f)
            path = os.path.join(out_dir, f"gt_{f:04d}.png")
            scene.render.filepath = path
            bpy.ops.render.render(write_still=True)
            paths.append(path)
            if progress:
                progress("ground truth", n + 1, len(frames))
    finally:
        scene.render.filepath, scene.render.image_settings.color_mode = saved_path, saved_mode
    return paths
