"""2D keypoints (OpenPose-18) projected from the armature, with visibility."""
from __future__ import annotations

import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from ..core import keypoint_map, protocol
from ..core.keypoint_map import TAIL

# A joint counts as occluded when the environment is nearer than the joint by
# more than this (metres, plus a fraction of the depth). Joints sit inside the
# body, so a small margin keeps the floor under a foot from "hiding" the ankle.
OCCLUSION_MARGIN_M = 0.05
OCCLUSION_MARGIN_REL = 0.01


def resolve_for(armature, user_mapping=None) -> dict:
    return keypoint_map.resolve([b.name for b in armature.pose.bones], user_mapping, armature_name=armature.name)


def world_positions(armature, mapping: dict) -> dict:
    """{keypoint: world Vector or None} for the armature's current (evaluated) pose."""
    mw = armature.matrix_world
    pbs = armature.pose.bones
    out = {}
    for kp, entry in mapping.items():
        if entry is None or entry[0] == "derived":
            out[kp] = None
            continue
        bone, end = entry
        pb = pbs[bone]
        out[kp] = mw @ (pb.tail if end == TAIL else pb.head)
    for kp, entry in mapping.items():
        if entry is not None and entry[0] == "derived":
            head = pbs[entry[1]]
            ls, rs = out.get("left_shoulder"), out.get("right_shoulder")
            if ls is None or rs is None:
                continue
            out[kp] = Vector(keypoint_map.derive_face_point(kp, mw @ head.head, mw @ head.tail, ls, rs))
    return out


def project_keypoints(scene, camera, armature, mapping: dict, width: int, height: int,
                      scene_depth: np.ndarray | None) -> np.ndarray:
    """float32 [K, 4]: x, y (pixels, top-left origin), planar depth, visibility.

    Call after ``scene.frame_set``. Visibility: 0 when unmapped, behind the
    camera or outside the frame; 0.5 when the scene depth at the joint's pixel
    is nearer than the joint; 1 otherwise.
    """
    pos = world_positions(armature, mapping)
    out = np.zeros((protocol.NUM_KEYPOINTS, 4), np.float32)
    for k, name in enumerate(protocol.KEYPOINT_NAMES):
        p = pos.get(name)
        if p is None:
            continue
        c = world_to_camera_view(scene, camera, p)
        x, y, z = c.x * width, (1.0 - c.y) * height, c.z
        vis = protocol.VIS_VISIBLE
        if z <= 0 or not (0 <= x < width and 0 <= y < height):
            vis = protocol.VIS_ABSENT
        elif scene_depth is not None:
            d = float(scene_depth[int(y), int(x)])
            if d < z - (OCCLUSION_MARGIN_M + OCCLUSION_MARGIN_REL * z):
                vis = protocol.VIS_OCCLUDED
        out[k] = (x, y, max(z, 0.0), vis)
    return out
