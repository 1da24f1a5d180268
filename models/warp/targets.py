"""Which of a frame's keypoints may drive the warp, and when a frame is unusable.

The add-on marks a joint absent (visibility 0) when it is unmapped or
outside the frame, but still sends the projected position of an off-frame
joint (with its camera depth). Such a position is real data: a character
walking in from the side is posed from it. An absent joint *inside* the
frame carries no position we can trust and falls back to its parent bone.
"""
from __future__ import annotations

import numpy as np

from blender_addon.core.conventions import KEYPOINT_NAMES, NUM_KEYPOINTS

from models.errors import InputError

FIELD = "frame.keypoints"
TORSO = tuple(KEYPOINT_NAMES.index(n) for n in
              ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip"))
MIN_TORSO_POINTS = 2
MIN_POINTS = 4
# Visible/occluded joints this far outside the frame (in frame sizes) are bad data.
MAX_OUTSIDE = 1.0
# Off-frame joints beyond this are too far away to matter and are ignored.
OFFFRAME_USE_LIMIT = 2.0


def usable_keypoints(kp: np.ndarray, height: int, width: int, *, index: int | None = None) -> np.ndarray | None:
    """Bool [K]: keypoints that drive the warp; None when the character is not
    in view at all (no joint in or near the frame). Raises InputError
    for inconsistent or insufficient keypoints."""
    where = f"frame {index}" if index is not None else "frame"
    kp = np.asarray(kp, np.float32)
    if kp.shape != (NUM_KEYPOINTS, 4):
        raise InputError(f"{where}: keypoints must be float32 [{NUM_KEYPOINTS}, 4], "
                               f"got {list(kp.shape)}", field=FIELD)
    if not np.isfinite(kp).all():
        raise InputError(f"{where}: keypoints contain NaN or Inf", field=FIELD)
    x, y, z, vis = kp[:, 0], kp[:, 1], kp[:, 2], kp[:, 3]
    present = vis > 0
    far = ((x < -MAX_OUTSIDE * width) | (x > (1 + MAX_OUTSIDE) * width) |
           (y < -MAX_OUTSIDE * height) | (y > (1 + MAX_OUTSIDE) * height))
    if (present & far).any():
        bad = [KEYPOINT_NAMES[k] for k in np.nonzero(present & far)[0]]
        raise InputError(f"{where}: keypoints {', '.join(bad)} are marked visible but lie far "
                               f"outside the {width}x{height} frame (x, y must be pixels, top-left "
                               "origin)", field=FIELD)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    near = ((x > -OFFFRAME_USE_LIMIT * width) & (x < (1 + OFFFRAME_USE_LIMIT) * width) &
            (y > -OFFFRAME_USE_LIMIT * height) & (y < (1 + OFFFRAME_USE_LIMIT) * height))
    offframe = ~present & ~inside & near & (z > 0)
    usable = present | offframe
    if not usable.any():
        return None
    n_torso = int(usable[list(TORSO)].sum())
    if n_torso < MIN_TORSO_POINTS or int(usable.sum()) < MIN_POINTS:
        raise InputError(f"{where}: too few usable keypoints to pose the character: "
                               f"{int(usable.sum())} usable (need {MIN_POINTS}), {n_torso} of neck/"
                               f"shoulders/hips (need {MIN_TORSO_POINTS}); visibility 0 joints inside "
                               "the frame cannot drive the warp", field=FIELD)
    return usable
