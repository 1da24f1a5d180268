"""Training samples from rendered clips: the self-supervision of Animate Anyone 2 (numpy + cv2).

One sample = ``window`` consecutive frames of one clip (1 in stage 1, a motion
window in stage 2) plus a reference. Per the spec
(/work/shared/spec/animate-anyone-2.md):

- the reference is *another frame of the same clip* with its background
  replaced by a random plain colour (the character's own appearance, never
  the target frame's pixels or environment);
- the shape-agnostic mask is drawn with random block counts, so the model
  cannot read the body outline from the mask edge;
- every array of the target frames (ground truth, environment, mask, depths,
  labels, keypoints) goes through one random scale-and-shift, which scales
  the character and the objects alike;
- the reference is dropped (zero CLIP embedding, as at the unconditional half
  of classifier-free guidance) with probability ``drop_reference``.

Every random choice comes from the generator given, so sample ``k`` of a
training run is a function of (seed, k) alone: resuming repeats nothing and
skips nothing.
"""
from __future__ import annotations

import cv2
import numpy as np

from blender_addon.core.conventions import NO_SURFACE_DEPTH, VIS_ABSENT
from models.aa2.conditioning import shape_agnostic_mask

FRAME_KEYS = ("environment", "character_mask", "character_depth", "scene_depth", "object_labels", "keypoints")


def reference_from_frame(gt: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """The frame's character on a plain background of ``colour`` (uint8 RGB)."""
    a = (np.asarray(mask) > 0)[..., None]
    return np.where(a, gt, np.asarray(colour, np.uint8)[None, None]).astype(np.uint8)


def _affine(scale: float, shift, size: int) -> np.ndarray:
    c = size / 2.0
    return np.array([[scale, 0, c - scale * c + shift[0]], [0, scale, c - scale * c + shift[1]]], np.float32)


def scale_frame(frame: dict, gt: np.ndarray, m: np.ndarray) -> tuple[dict, np.ndarray]:
    """Apply one 2x3 affine to every array of a frame (labels and depth nearest, images linear)."""
    h, w = gt.shape[:2]

    def warp(img, interp, border, value=0):
        return cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=interp, borderMode=border,
                              borderValue=value)
    out = {"environment": warp(frame["environment"], cv2.INTER_LINEAR, cv2.BORDER_REFLECT),
           "character_mask": warp(frame["character_mask"], cv2.INTER_NEAREST, cv2.BORDER_CONSTANT),
           "character_depth": warp(frame["character_depth"], cv2.INTER_NEAREST, cv2.BORDER_CONSTANT,
                                   NO_SURFACE_DEPTH),
           "scene_depth": warp(frame["scene_depth"], cv2.INTER_NEAREST, cv2.BORDER_REFLECT),
           "object_labels": warp(frame["object_labels"], cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)}
    kp = np.array(frame["keypoints"], np.float32)
    kp[:, :2] = kp[:, :2] @ m[:, :2].T + m[:, 2]
    outside = (kp[:, 0] < 0) | (kp[:, 0] >= w) | (kp[:, 1] < 0) | (kp[:, 1] >= h)
    kp[outside, 3] = VIS_ABSENT
    out["keypoints"] = kp
    return out, warp(gt, cv2.INTER_LINEAR, cv2.BORDER_REFLECT)


def make_sample(clip: dict, rng: np.random.Generator, *, window: int, mask_block: int = 10,
                scale_range=(0.85, 1.15), drop_reference: float = 0.1) -> dict:
    """One training sample from a loaded clip (see the module doc)."""
    n = clip["gt"].shape[0]
    window = min(window, n)
    start = int(rng.integers(0, n - window + 1))
    idx = list(range(start, start + window))
    others = [i for i in range(n) if i not in idx] or idx
    ref_i = int(rng.choice(others))
    colour = rng.integers(0, 256, 3)
    reference = reference_from_frame(clip["gt"][ref_i], clip["character_mask"][ref_i], colour)
    size = clip["gt"].shape[1]
    scale = float(rng.uniform(*scale_range))
    shift = rng.uniform(-0.08, 0.08, 2) * size
    m = _affine(scale, shift, size)
    frames, gts, agnostic = [], [], []
    kh, kw = (int(v) for v in rng.integers(1, 1 << 30, 2))   # one block-count draw per sample, as one mask shape
    for i in idx:
        fr, gt = scale_frame({k: clip[k][i] for k in FRAME_KEYS}, clip["gt"][i], m)
        frames.append(fr)
        gts.append(gt)
        agnostic.append(shape_agnostic_mask(fr["character_mask"], (mask_block, mask_block),
                                            rng=np.random.default_rng([kh, kw])))
    return {"frames": frames, "gt": np.stack(gts), "agnostic": agnostic, "reference": reference,
            "drop_reference": bool(rng.random() < drop_reference), "clip": int(clip["meta"]["clip"]),
            "objects": list(clip["meta"]["objects"])}
