"""The few facts every layer shares besides the wire: keypoint layouts (body,
hands, toes, face box) and placement, limb tables, keypoint visibility, "no
surface" depth.

Imports nothing, so the models, the preview warp, the add-on's passes and the
protocol all take these from here (import them from this module).
"""
from __future__ import annotations

KEYPOINT_LAYOUT = "openpose18"
KEYPOINT_NAMES = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
# Where the points sit (SUBMIT's ``keypoint_placement``): "estimator" -- where a pose estimator
# (DWPose / COCO-WholeBody) would put them: the neck between the shoulders, face points on the
# head's skin, toes at the front of the foot's mesh (what this add-on sends); "rig" -- the rig's
# joints (bone heads), what clients before the field sent and what its absence means.
KEYPOINT_PLACEMENTS = ("estimator", "rig")
KEYPOINT_PLACEMENT = "estimator"
# Limb pairs (indices into KEYPOINT_NAMES) drawn by skeleton renderers.
KEYPOINT_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# Hands (optional frame input ``hand_keypoints``): 21 points per hand in the
# OpenPose hand layout -- wrist, then thumb, index, middle, ring, pinky from
# base to tip -- left hand first (rows 0-20), then the right (21-41), as in
# COCO-WholeBody (its points 91-111 and 112-132). Same 4 columns as ``keypoints``.
HAND_LAYOUT = "openpose_hand21"
HAND_POINTS = ("wrist",
               "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
               "index_mcp", "index_pip", "index_dip", "index_tip",
               "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
               "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
               "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip")
HAND_KEYPOINT_NAMES = tuple(f"{side}_hand_{p}" for side in ("left", "right") for p in HAND_POINTS)
NUM_HAND_KEYPOINTS = len(HAND_KEYPOINT_NAMES)   # 42
# Bones of one hand (indices into HAND_POINTS) for drawing.
HAND_LIMBS = tuple((0 if j % 4 == 1 else j - 1, j) for j in range(1, 21))
# Toes (optional frame input ``toe_keypoints``): the front of each foot (the
# toe tip, else the ball of the foot), left then right -- the two extra body
# points of Wan-Animate's OpenPose-20. Same 4 columns as ``keypoints``.
TOE_KEYPOINT_NAMES = ("left_toe", "right_toe")
# Face box (optional frame input ``face_box``): float32 [5] = x0, y0, x1, y1
# (pixels, top-left origin, clipped to the frame) of the character's head,
# then its visibility: 1 facing the camera and not hidden, 0.5 turned away or
# hidden by the scene, 0 absent (no head, or out of frame; the box is then 0).
FACE_BOX_LAYOUT = ("x0", "y0", "x1", "y1", "visibility")

# Keypoint visibility values (column 3 of a keypoints array).
VIS_ABSENT, VIS_OCCLUDED, VIS_VISIBLE = 0.0, 0.5, 1.0

# Cycles writes this planar depth where a ray hits nothing; the protocol uses
# the same finite value for "no surface" so float buffers never hold inf.
NO_SURFACE_DEPTH = 1.0e10
# Depths at or beyond this mean "no surface". Half the sentinel, so a value
# that went through float16 or a resize still reads as empty.
NO_SURFACE_THRESHOLD = NO_SURFACE_DEPTH * 0.5


def neck_between_shoulders(kps):
    """A copy of keypoints [18, 4] (numpy) with the neck at the midpoint of the shoulders in the image,
    as COCO-trained estimators draw OpenPose-18 (depth their mean, visibility the lesser), or absent
    when either shoulder is."""
    n, ls, rs = KEYPOINT_INDEX["neck"], KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_shoulder"]
    out = kps.copy()
    if kps[ls, 3] > 0 and kps[rs, 3] > 0:
        out[n, :3] = (kps[ls, :3] + kps[rs, :3]) / 2
        out[n, 3] = min(kps[ls, 3], kps[rs, 3])
    else:
        out[n] = 0.0
    return out


def has_surface(depth):
    """Boolean mask of pixels with a surface (works on numpy arrays and floats)."""
    return depth < NO_SURFACE_THRESHOLD
