"""Replace-mode inputs of Wan-Animate, made from Blender's exact passes.

numpy + OpenCV only. What Wan's own preprocessing does with a segmenter's
matte (``wan/modules/animate/preprocess``: dilate, grid-coarsen, black out the
background under it), done here on Blender's exact matte, plus one thing Wan
does not do: the mask is snapped to the VAE's 8-px latent grid and the *same*
snapped mask blacks out the background. The pipeline nearest-samples the mask
at /8 while it VAE-encodes the background at full resolution; a mask edge
inside a latent cell lets black pixels leak into "keep" cells (the dark halo
users report).
"""
from __future__ import annotations

import cv2
import numpy as np

from models.aa2.conditioning import shape_agnostic_mask

LATENT_CELL = 8        # AutoencoderKLWan spatial stride
FACE_SIZE = 512        # WanAnimateTransformer3DModel.config.motion_encoder_size (real model)


def dilation_kernel(height: int, width: int) -> int:
    """Wan dilates its matte with a 7x7 kernel, 3 passes, at 720p; keep the same
    reach in pixels relative to the frame (odd, at least 3)."""
    k = max(3, int(round(7 * min(height, width) / 720)))
    return k if k % 2 else k + 1


def snap_to_grid(mask: np.ndarray, cell: int = LATENT_CELL) -> np.ndarray:
    """Every cell x cell block that any mask pixel touches becomes fully on
    (uint8 0/255). Frame sizes that are not a multiple of ``cell`` keep their
    partial last row/column of cells."""
    on = np.asarray(mask) > 0
    h, w = on.shape
    gh, gw = -(-h // cell), -(-w // cell)
    padded = np.zeros((gh * cell, gw * cell), bool)
    padded[:h, :w] = on
    cells = padded.reshape(gh, cell, gw, cell).any(axis=(1, 3))
    full = np.repeat(np.repeat(cells, cell, 0), cell, 1)[:h, :w]
    return np.where(full, 255, 0).astype(np.uint8)


def generation_mask(matte: np.ndarray, *, block: int = 0, iterations: int = 3) -> np.ndarray:
    """The mask Wan generates under: exact matte -> dilated (Wan's k x k, 3
    passes, scaled to the frame) -> coarsened (``block`` px cells over the
    bounding box as in Animate Anyone 2's shape-agnostic mask; 0 = the whole
    bounding box, Wan's README default ``--w_len 1 --h_len 1``) -> snapped to
    the latent grid. An empty matte gives an empty mask (the frame is kept)."""
    m = (np.asarray(matte) > 0).astype(np.uint8)
    if not m.any():
        return np.zeros(m.shape, np.uint8)
    h, w = m.shape
    k = dilation_kernel(h, w)
    m = cv2.dilate(m, np.ones((k, k), np.uint8), iterations=iterations)
    if block > 0:
        m = shape_agnostic_mask(m * 255, (block, block))
    else:
        ys, xs = np.nonzero(m)
        m = np.zeros((h, w), np.uint8)
        m[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 255
    return snap_to_grid(m)


def black_out(environment: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Wan's ``src_bg``: the environment with the generation mask black."""
    out = np.array(environment[..., :3], np.uint8, copy=True)
    out[np.asarray(mask) > 0] = 0
    return out


def letterbox(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fit ``image`` (uint8 RGB or RGBA) into height x width keeping its aspect,
    centred on black (Wan's ``padding_resize``). RGBA is flattened onto black
    first: the character, not its transparent canvas, is what CLIP should see.
    Doing it before the pipeline also keeps CLIP's centre crop from cutting the
    character off."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"reference must be uint8 [h, w, 3|4], got {list(img.shape)}")
    if img.shape[2] == 4:
        a = img[..., 3:4].astype(np.float32) / 255.0
        img = np.rint(img[..., :3].astype(np.float32) * a).astype(np.uint8)
    h, w = img.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = resized
    return out


# Indices into conventions.KEYPOINT_NAMES of the points that outline a head.
_HEAD = (0, 14, 15, 16, 17)   # nose, right/left eye, right/left ear


def head_points(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """(x, y) of the head keypoints that are present and inside the frame."""
    kp = np.asarray(keypoints, np.float32)
    pts = kp[list(_HEAD)]
    keep = (pts[:, 3] > 0) & (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    return pts[keep, :2]


def face_box(keypoints: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """(x1, x2, y1, y2) of the face crop, or None when the face is not visible.

    Wan's rule (``get_face_bboxes``) works on the 68 face landmarks: their
    bounding box, area x1.3, half the extra width on each side, 3/4 of the
    extra height above (forehead) and 1/4 below, clipped to the frame. We have
    nose, eyes and ears, so the landmark box is first rebuilt from them: as
    wide as the ears (or 2x the eye span), 1.15x as tall as wide, with the eyes
    at 40% of its height -- the proportions of the 68-point layout."""
    pts = head_points(keypoints, height, width)
    if len(pts) < 2:
        return None
    kp = np.asarray(keypoints, np.float32)
    x_min, x_max = float(pts[:, 0].min()), float(pts[:, 0].max())
    span = x_max - x_min
    eyes = kp[[14, 15]]
    if span < 1.0 and (eyes[:, 3] > 0).all():
        span = 2.0 * abs(float(eyes[0, 0] - eyes[1, 0]))
    if span < 2.0:
        span = 2.0 * float(np.ptp(pts[:, 1])) + 2.0
    cx = (x_min + x_max) / 2
    eye_y = float(eyes[eyes[:, 3] > 0, 1].mean()) if (eyes[:, 3] > 0).any() else float(pts[:, 1].mean())
    lw, lh = span, 1.15 * span
    lx0, lx1 = cx - lw / 2, cx + lw / 2
    ly0 = eye_y - 0.4 * lh
    ly1 = ly0 + lh
    # Wan's expansion, verbatim in effect (area x scale, aspect kept).
    scale = 1.3
    new_w, new_h = lw * np.sqrt(scale), lh * np.sqrt(scale)
    dw, dh = (new_w - lw) / 2, (new_h - lh) / 4
    x1, x2 = max(lx0 - dw, 0), min(lx1 + dw, width)
    y1, y2 = max(ly0 - 3 * dh, 0), min(ly1 + dh, height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return int(x1), int(x2), int(y1), int(y2)


def crop_face(image: np.ndarray, box: tuple[int, int, int, int] | None, size: int = FACE_SIZE) -> np.ndarray:
    """The face crop stretched to size x size (Wan resizes without keeping the
    aspect), or Wan's null face -- black -- when there is no box."""
    if box is None:
        return np.zeros((size, size, 3), np.uint8)
    x1, x2, y1, y2 = box
    crop = np.asarray(image)[y1:y2, x1:x2, :3]
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_LINEAR)
