"""The reference character as the preview engine uses it: colour, matte, keypoints.

The reference comes from the SUBMIT: uint8 RGBA (its alpha is the matte) or
RGB, which is matted here by estimating a plain background from the image
border. Reference keypoints come with the job; only when they are missing do
we try the optional offline pose model (mediapipe), imported lazily so the
engine works without it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from blender_addon.core.conventions import KEYPOINT_LAYOUT, KEYPOINT_NAMES, NUM_KEYPOINTS, VIS_ABSENT, VIS_VISIBLE

from models.errors import InputError

from .detector import MEDIAPIPE_PIN

# mediapipe Pose landmark index for each OpenPose-18 keypoint (neck is derived).
_MEDIAPIPE_OF_OPENPOSE = {
    "nose": 0, "right_shoulder": 12, "right_elbow": 14, "right_wrist": 16,
    "left_shoulder": 11, "left_elbow": 13, "left_wrist": 15,
    "right_hip": 24, "right_knee": 26, "right_ankle": 28,
    "left_hip": 23, "left_knee": 25, "left_ankle": 27,
    "right_eye": 5, "left_eye": 2, "right_ear": 8, "left_ear": 7,
}


@dataclass
class Reference:
    """Premultiplied colour and matte of the reference, plus its keypoints."""
    rgb_premult: np.ndarray   # float32 [h, w, 3]: colour * alpha (warps without dark fringes)
    alpha: np.ndarray         # float32 [h, w] in [0, 1]
    keypoints: np.ndarray     # float32 [18, 4]

    @property
    def size(self) -> tuple[int, int]:
        return self.alpha.shape[0], self.alpha.shape[1]


def prepare_reference(image: np.ndarray | None, keypoints: np.ndarray | None, *,
                      matte_threshold: float = 40.0) -> Reference:
    """Validate the SUBMIT's reference and keypoints; matte an RGB image."""
    img = check_reference_image(image)
    rgb = np.ascontiguousarray(img[..., :3])
    if img.shape[2] == 4:
        alpha = img[..., 3].astype(np.float32) / 255.0
    else:
        alpha = matte_plain_background(rgb, threshold=matte_threshold)
    if float(alpha.max()) <= 0.0:
        raise InputError("reference has an empty matte (alpha is 0 everywhere, or the "
                               "automatic matte found no character; try a lower matte_threshold)",
                               field="submit.reference")
    if keypoints is None:
        keypoints = detect_keypoints(rgb)
    kp = check_reference_keypoints(keypoints, img.shape[0], img.shape[1])
    rgb, alpha, kp = crop_to_character(rgb, alpha, kp)
    return Reference(rgb_premult=rgb.astype(np.float32) * alpha[..., None], alpha=alpha, keypoints=kp)


def check_reference_image(image: np.ndarray | None) -> np.ndarray:
    if image is None:
        raise InputError("the preview engine needs a reference image (uint8 [h, w, 3|4])",
                               field="submit.reference")
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 8:
        raise InputError(f"reference must be uint8 [h, w, 3|4] with h, w >= 8, got "
                               f"{img.dtype}{list(img.shape)}", field="submit.reference")
    return img


def crop_to_character(rgb: np.ndarray, alpha: np.ndarray, kp: np.ndarray, margin: int = 2):
    """Cut the empty border off the reference (keypoints shifted to match).

    Per-job set-up cost and memory grow with the reference's area; a portrait
    with the character in a third of it would pay three times for nothing.
    """
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha > 0)
    present = kp[:, 3] > 0
    x0 = int(max(0, min(xs.min(), np.floor(kp[present, 0].min())) - margin))
    y0 = int(max(0, min(ys.min(), np.floor(kp[present, 1].min())) - margin))
    x1 = int(min(w, max(xs.max() + 1, np.ceil(kp[present, 0].max()) + 1) + margin))
    y1 = int(min(h, max(ys.max() + 1, np.ceil(kp[present, 1].max()) + 1) + margin))
    kp = kp.copy()
    kp[:, 0] -= x0
    kp[:, 1] -= y0
    return rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1], kp


def matte_plain_background(rgb: np.ndarray, *, threshold: float = 40.0) -> np.ndarray:
    """float32 [h, w] matte of a character photographed on a plain background.

    The background colour is the median of the image border; pixels farther
    than ``threshold`` (RGB distance) from it are character. Only components
    touching the largest one survive, and holes inside it are filled, so a
    shirt the colour of the backdrop does not punch through the body.
    """
    h, w = rgb.shape[:2]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
    bg = np.median(border, axis=0)
    dist = np.linalg.norm(rgb.astype(np.float32) - bg, axis=2)
    fg = (dist > threshold).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros((h, w), np.float32)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    body = (labels == biggest).astype(np.uint8)
    # Fill holes: flood the background from the border; what it cannot reach is body.
    padded = np.pad(body, 1)
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    body[holes] = 1
    # A one-pixel soft edge: the matte is estimated, a hard step would alias.
    return cv2.GaussianBlur(body.astype(np.float32), (3, 3), 0.7)


def check_reference_keypoints(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    kp = np.asarray(keypoints)
    field = "submit.reference_keypoints"
    if kp.shape != (NUM_KEYPOINTS, 4):
        raise InputError(f"reference_keypoints must be float32 [{NUM_KEYPOINTS}, 4] "
                               f"(x, y, depth, visibility; {KEYPOINT_LAYOUT} order), got "
                               f"{list(kp.shape)}", field=field)
    kp = kp.astype(np.float32)
    if not np.isfinite(kp).all():
        raise InputError("reference_keypoints contain NaN or Inf", field=field)
    present = kp[:, 3] > 0
    torso = [KEYPOINT_NAMES.index(n) for n in
             ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip")]
    if present[torso].sum() < 3:
        raise InputError("reference_keypoints need at least 3 of neck, shoulders and hips "
                               f"present (visibility > 0), got {int(present[torso].sum())}", field=field)
    xy = kp[present, :2]
    if (xy[:, 0] < -0.5 * width).any() or (xy[:, 0] > 1.5 * width).any() or \
            (xy[:, 1] < -0.5 * height).any() or (xy[:, 1] > 1.5 * height).any():
        raise InputError(f"reference_keypoints lie far outside the {width}x{height} reference "
                               "image (x, y must be pixels, top-left origin)", field=field)
    return kp


def require_pose_detector():
    """The optional offline pose model's module, or the InputError saying what to send or install."""
    try:
        import mediapipe as mp  # optional extra: ships its pose model in the wheel, no download
    except ImportError as exc:
        raise InputError(
            "the job has no reference_keypoints and the optional pose detector is not installed; "
            f"send reference_keypoints with the job or `pip install {MEDIAPIPE_PIN}` on the server",
            field="submit.reference_keypoints") from exc
    return mp


def detect_keypoints(rgb: np.ndarray) -> np.ndarray:
    """OpenPose-18 keypoints of the reference from the optional offline pose model."""
    mp = require_pose_detector()
    h, w = rgb.shape[:2]
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        found = pose.process(np.ascontiguousarray(rgb))
    if found.pose_landmarks is None:
        raise InputError("no person found in the reference image; send reference_keypoints "
                               "with the job", field="submit.reference_keypoints")
    marks = found.pose_landmarks.landmark
    kp = np.zeros((NUM_KEYPOINTS, 4), np.float32)
    for name, mi in _MEDIAPIPE_OF_OPENPOSE.items():
        m = marks[mi]
        vis = VIS_VISIBLE if m.visibility > 0.5 else VIS_ABSENT
        kp[KEYPOINT_NAMES.index(name)] = (m.x * w, m.y * h, 0.0, vis)
    rs, ls = kp[KEYPOINT_NAMES.index("right_shoulder")], kp[KEYPOINT_NAMES.index("left_shoulder")]
    if rs[3] > 0 and ls[3] > 0:
        kp[KEYPOINT_NAMES.index("neck")] = ((rs[0] + ls[0]) / 2, (rs[1] + ls[1]) / 2, 0.0, 1.0)
    return kp
