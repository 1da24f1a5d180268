"""The few facts every layer shares besides the wire: keypoint layout, limb
table, keypoint visibility, "no surface" depth.

Imports nothing, so the models, the preview warp, the add-on's passes and the
protocol all take these from here; ``protocol.py`` re-exports them because the
wire's tables are written in their terms.
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
# Limb pairs (indices into KEYPOINT_NAMES) drawn by skeleton renderers.
KEYPOINT_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# Keypoint visibility values (column 3 of a keypoints array).
VIS_ABSENT, VIS_OCCLUDED, VIS_VISIBLE = 0.0, 0.5, 1.0

# Cycles writes this planar depth where a ray hits nothing; the protocol uses
# the same finite value for "no surface" so float buffers never hold inf.
NO_SURFACE_DEPTH = 1.0e10
# Depths at or beyond this mean "no surface". Half the sentinel, so a value
# that went through float16 or a resize still reads as empty.
NO_SURFACE_THRESHOLD = NO_SURFACE_DEPTH * 0.5


def has_surface(depth):
    """Boolean mask of pixels with a surface (works on numpy arrays and floats)."""
    return depth < NO_SURFACE_THRESHOLD
