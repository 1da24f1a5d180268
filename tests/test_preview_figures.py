"""Synthetic reference characters for the preview engine's tests (drawn here, no files)."""
from __future__ import annotations

import cv2
import numpy as np

from blender_addon.core import conventions

K = {n: i for i, n in enumerate(conventions.KEYPOINT_NAMES)}

# A standing figure in a 256x256 reference, arms slightly out.
POSE_256 = dict(
    nose=(128, 40), neck=(128, 70), right_shoulder=(100, 72), left_shoulder=(156, 72),
    right_elbow=(92, 110), left_elbow=(164, 110), right_wrist=(88, 148), left_wrist=(168, 148),
    right_hip=(112, 150), left_hip=(144, 150), right_knee=(110, 195), left_knee=(146, 195),
    right_ankle=(108, 238), left_ankle=(148, 238), right_eye=(122, 35), left_eye=(134, 35),
    right_ear=(114, 40), left_ear=(142, 40),
)


def figure(size: int = 256, *, depth: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGBA [size, size, 4] textured stick figure, float32 [18, 4] keypoints)."""
    f = size / 256.0
    kp = np.zeros((conventions.NUM_KEYPOINTS, 4), np.float32)
    for name, (x, y) in POSE_256.items():
        kp[K[name]] = (x * f, y * f, depth, conventions.VIS_VISIBLE)
    img = np.zeros((size, size, 4), np.uint8)
    rng = np.random.default_rng(0)
    th = max(3, int(round(12 * f)))
    for a, b in conventions.KEYPOINT_LIMBS:
        colour = tuple(int(v) for v in rng.integers(60, 255, 3)) + (255,)
        cv2.line(img, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), colour, th)
    quad = kp[[K["right_shoulder"], K["left_shoulder"], K["left_hip"], K["right_hip"]], :2]
    cv2.fillConvexPoly(img, quad.astype(np.int32), (200, 80, 60, 255))
    cv2.circle(img, (int(128 * f), int(38 * f)), int(16 * f), (230, 190, 160, 255), -1)
    # A checker texture so misplaced pixels change SSIM, not just the outline.
    yy, xx = np.mgrid[0:size, 0:size]
    checker = ((xx // 4 + yy // 6) % 2 == 0) & (img[..., 3] > 0)
    img[..., :3][checker] //= 2
    return img, kp


def over(env: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Plain alpha-over of an RGBA image on an RGB background (the expected composite)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) * a + env.astype(np.float32) * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def rotate_about(p, centre, degrees):
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    d = np.asarray(p, np.float64) - centre
    return centre + np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
