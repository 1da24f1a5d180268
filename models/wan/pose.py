"""Wan-Animate's pose video, drawn as its own preprocessing draws it.

The model was trained on skeletons rendered by ``draw_aapose_new`` /
``draw_handpose_new`` (Wan2.2 ``wan/modules/animate/preprocess/
human_visualization.py``) on a black RGB canvas; what it sees must match
those maps: 20 body points, 19 limbs as filled ellipses in OpenPose colours
x0.6, joints as full-colour discs, stick width ``max(int(min(H, W)/200) - 1, 1)``
(2 px at 720p, 1 px at 480p), hands as 1-px rainbow lines with blue dots.
Coordinates are truncated to int as there (no anti-aliasing).
"""
from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

WAN_BODY_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear", "left_toe", "right_toe",
)
# 0-based pairs into WAN_BODY_NAMES (Wan lists them 1-based).
WAN_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (13, 18), (10, 19),
)
WAN_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85), (200, 200, 0), (100, 100, 0),
)
HAND_EDGES = tuple((0 if i % 4 == 0 else i, i + 1) for i in range(20))
HAND_DOT = (0, 0, 255)
LIMB_DIM = 0.6
THRESHOLD = 0.5    # draw_aapose_by_meta_new's score threshold


def stick_width(height: int, width: int) -> int:
    return max(int(min(height, width) / 200) - 1, 1)


def scored(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Protocol points [N, 4] (x, y, depth, visibility) -> [N, 3] (x, y, score).

    A point counts (score 1) when it is present (visible or occluded: the model
    needs the whole pose; occlusion is the composite's job) and inside the frame
    -- the pose estimator Wan was trained with only reports points it sees."""
    kp = np.asarray(points, np.float32)
    out = np.zeros((len(kp), 3), np.float32)
    out[:, :2] = kp[:, :2]
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < width) & (kp[:, 1] >= 0) & (kp[:, 1] < height)
    out[:, 2] = ((kp[:, 3] > 0) & inside).astype(np.float32)
    return out


def wan_body_from_openpose18(keypoints: np.ndarray, height: int, width: int, toes=None) -> np.ndarray:
    """Our protocol's 18 OpenPose keypoints (+ optional ``toe_keypoints`` [2, 4],
    left then right) -> Wan's 20 body points [20, 3] (x, y, score).

    The first 18 are the same points in the same order, Wan's last two are the
    toes (absent without ``toes``). Wan's neck is the mean of the two shoulders
    (ViTPose has no neck); the add-on already sends it there (``keypoint_placement``
    "estimator"), and it is recomputed here so any keypoints draw the same."""
    kp = np.asarray(keypoints, np.float32)
    if kp.shape != (18, 4):
        raise ValueError(f"keypoints must be float32 [18, 4] (x, y, depth, visibility), got {list(kp.shape)}")
    body = np.zeros((20, 3), np.float32)
    body[:18] = scored(kp, height, width)
    if toes is not None:
        body[18:20] = scored(np.asarray(toes, np.float32).reshape(2, 4), height, width)
    if body[2, 2] > 0 and body[5, 2] > 0:
        body[1, :2] = (body[2, :2] + body[5, :2]) / 2
        body[1, 2] = 1.0
    else:
        body[1, 2] = 0.0
    return body


def draw_body(canvas: np.ndarray, body: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    h, w = canvas.shape[:2]
    sw = stick_width(h, w)
    for (a, b), color in zip(WAN_LIMBS, WAN_COLORS):
        p, q = body[a], body[b]
        if p[2] < threshold or q[2] < threshold:
            continue
        mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
        length = math.hypot(p[0] - q[0], p[1] - q[1])
        angle = math.degrees(math.atan2(p[1] - q[1], p[0] - q[0]))
        poly = cv2.ellipse2Poly((int(mx), int(my)), (int(length / 2), sw), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, [int(float(c) * LIMB_DIM) for c in color])
    for p, color in zip(body, WAN_COLORS):
        if p[2] < threshold:
            continue
        cv2.circle(canvas, (int(p[0]), int(p[1])), sw, list(color), thickness=-1)
    return canvas


def hand_edge_color(index: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(index / float(len(HAND_EDGES)), 1.0, 1.0)
    # Wan passes matplotlib's float colour straight to OpenCV, which rounds it.
    return round(r * 255), round(g * 255), round(b * 255)


def draw_hand(canvas: np.ndarray, hand: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """One hand, [21, 3] (x, y, score) in the OpenPose hand order."""
    h, w = canvas.shape[:2]
    sw = max(stick_width(h, w) // 2, 1)
    eps = 0.01
    hand = np.asarray(hand, np.float32)
    for i, (a, b) in enumerate(HAND_EDGES):
        p, q = hand[a], hand[b]
        if p[2] < threshold or q[2] < threshold:
            continue
        x1, y1, x2, y2 = int(p[0]), int(p[1]), int(q[0]), int(q[1])
        if x1 > eps and y1 > eps and x2 > eps and y2 > eps:
            cv2.line(canvas, (x1, y1), (x2, y2), hand_edge_color(i), thickness=sw)
    for p in hand:
        if p[2] >= threshold and int(p[0]) > eps and int(p[1]) > eps:
            cv2.circle(canvas, (int(p[0]), int(p[1])), sw, HAND_DOT, thickness=-1)
    return canvas


def draw_pose(keypoints: np.ndarray, height: int, width: int, *, hands=None, toes=None) -> np.ndarray:
    """The pose frame for one shot frame: uint8 [H, W, 3] RGB. ``keypoints`` are
    the protocol's [18, 4] at this resolution; ``hands`` the optional
    ``hand_keypoints`` [42, 4] (left hand rows 0-20, right 21-41, from the rig's
    finger bones) and ``toes`` the optional ``toe_keypoints`` [2, 4]. Without
    them the hands and toes are absent, as Wan's are when its estimator misses them."""
    canvas = np.zeros((height, width, 3), np.uint8)
    draw_body(canvas, wan_body_from_openpose18(keypoints, height, width, toes))
    if hands is not None:
        pts = scored(np.asarray(hands, np.float32).reshape(42, 4), height, width)
        for hand in (pts[:21], pts[21:]):
            if hand[:, 2].any():
                draw_hand(canvas, hand)
    return canvas


def scale_keypoints(keypoints: np.ndarray, sy: float, sx: float) -> np.ndarray:
    """Keypoints (any [N, 4] protocol points) of the shot at another working resolution."""
    kp = np.array(keypoints, np.float32, copy=True)
    kp[:, 0] *= sx
    kp[:, 1] *= sy
    return kp
