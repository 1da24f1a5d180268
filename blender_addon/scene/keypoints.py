"""2D keypoints (OpenPose-18, 21 per hand) and the face box, projected from
the armature with depth-tested visibility."""
from __future__ import annotations

import numpy as np
from bpy_extras.object_utils import world_to_camera_view

from ..core import conventions
from .rig import PosedRig, map_armature

# A joint counts as occluded when the environment is nearer than the joint by
# more than this (metres, plus a fraction of the depth). Joints sit inside the
# body, so a small margin keeps the floor under a foot from "hiding" the ankle.
OCCLUSION_MARGIN_M = 0.05
OCCLUSION_MARGIN_REL = 0.01


def resolve_for(armature, user_mapping=None):
    """The armature's RigMap (see core.rig_map)."""
    return map_armature(armature, user_mapping)


def project_points(scene, camera, points, width: int, height: int, scene_depth: np.ndarray | None) -> np.ndarray:
    """float32 [N, 4] for world points (None = unmapped): x, y (pixels, top-left
    origin), planar depth, visibility (0 unmapped / behind / outside, 0.5
    behind the scene's surface at that pixel, 1 visible)."""
    out = np.zeros((len(points), 4), np.float32)
    for k, p in enumerate(points):
        if p is None:
            continue
        c = world_to_camera_view(scene, camera, p)
        x, y, z = c.x * width, (1.0 - c.y) * height, c.z
        vis = conventions.VIS_VISIBLE
        if z <= 0 or not (0 <= x < width and 0 <= y < height):
            vis = conventions.VIS_ABSENT
        elif scene_depth is not None:
            d = float(scene_depth[int(y), int(x)])
            if d < z - (OCCLUSION_MARGIN_M + OCCLUSION_MARGIN_REL * z):
                vis = conventions.VIS_OCCLUDED
        out[k] = (x, y, max(z, 0.0), vis)
    return out


def project_keypoints(scene, camera, armature, mapping, width: int, height: int,
                      scene_depth: np.ndarray | None) -> np.ndarray:
    """float32 [18, 4] in KEYPOINT_NAMES order. Call after ``scene.frame_set``."""
    posed = PosedRig(armature, mapping)
    return project_points(scene, camera, posed.points(conventions.KEYPOINT_NAMES), width, height, scene_depth)


def project_hands(scene, camera, armature, mapping, width: int, height: int,
                  scene_depth: np.ndarray | None) -> np.ndarray:
    """float32 [42, 4] in HAND_KEYPOINT_NAMES order (left hand, then right)."""
    posed = PosedRig(armature, mapping)
    return project_points(scene, camera, posed.points(conventions.HAND_KEYPOINT_NAMES), width, height, scene_depth)


def project_toes(scene, camera, armature, mapping, width: int, height: int,
                 scene_depth: np.ndarray | None) -> np.ndarray:
    """float32 [2, 4] in TOE_KEYPOINT_NAMES order (left toe, right toe)."""
    posed = PosedRig(armature, mapping)
    return project_points(scene, camera, posed.points(conventions.TOE_KEYPOINT_NAMES), width, height, scene_depth)


def project_face_box(scene, camera, armature, mapping, width: int, height: int,
                     scene_depth: np.ndarray | None) -> np.ndarray:
    """float32 [5]: the head's box in pixels (clipped) and its visibility
    (1 facing the camera and unhidden, 0.5 turned away or hidden, 0 absent)."""
    out = np.zeros(len(conventions.FACE_BOX_LAYOUT), np.float32)
    if not mapping.face_box:
        return out
    posed = PosedRig(armature, mapping)
    corners = project_points(scene, camera, [posed.world(j) for j in mapping.face_box], width, height, None)
    centre_w = posed.world(mapping.face_centre)
    centre = project_points(scene, camera, [centre_w], width, height, scene_depth)[0]
    c = np.array([world_to_camera_view(scene, camera, posed.world(j)) for j in mapping.face_box])
    if (c[:, 2] <= 0).any():
        return out  # part of the head is behind the camera
    xs, ys = c[:, 0] * width, (1.0 - c[:, 1]) * height
    x0, x1 = float(np.clip(xs.min(), 0, width)), float(np.clip(xs.max(), 0, width))
    y0, y1 = float(np.clip(ys.min(), 0, height)), float(np.clip(ys.max(), 0, height))
    if x1 - x0 < 1 or y1 - y0 < 1 or not corners[:, 3].any():
        return out
    facing = (posed.world(mapping.face_front) - centre_w).dot(camera.matrix_world.translation - centre_w) > 0
    vis = conventions.VIS_VISIBLE if facing and centre[3] == conventions.VIS_VISIBLE else conventions.VIS_OCCLUDED
    out[:] = (x0, y0, x1, y1, vis)
    return out
