"""Image-space conditioning shared by every engine, the demo and the tests.

numpy + OpenCV only (no torch), so the preview engine, the contact sheet and
the metrics can use it without loading the diffusion stack:

- the shape-agnostic mask of Animate Anyone 2 (what the generator is told
  about *where* the character goes, without leaking its exact outline);
- OpenPose-style skeleton maps and "structured depth" for the pose guiders;
- the final depth-tested composite of a generated character over the exact
  environment render;
- SSIM / PSNR with the conventions of this line of work (DisCo scripts).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from blender_addon.core.conventions import KEYPOINT_LIMBS, has_surface

# OpenPose's 18 drawing colours (RGB), one per limb in KEYPOINT_LIMBS order
# and one per joint in KEYPOINT_NAMES order. Pose guiders trained on OpenPose
# maps expect exactly these colours.
OPENPOSE_COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0],
    [85, 255, 0], [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255],
    [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255], [170, 0, 255],
    [255, 0, 255], [255, 0, 170], [255, 0, 85]], dtype=np.uint8)



# -- shape-agnostic mask -------------------------------------------------------------
def shape_agnostic_mask(mask: np.ndarray, block=(10, 10), *,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """Blocky mask covering ``mask`` without following its outline.

    The mask's bounding box (h x w) is cut into k_h x k_w blocks; every block
    that touches the character is filled. At inference k_h = h / block[0] and
    k_w = w / block[1] (blocks of about ``block`` pixels). With ``rng`` the
    block counts are drawn at random between 1 and those values, which is the
    training-time augmentation: the generator must not learn the body shape
    from the mask edge.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {list(mask.shape)}")
    if isinstance(block, (int, np.integer)):
        block = (int(block), int(block))
    if block[0] < 1 or block[1] < 1:
        raise ValueError(f"block must be at least 1 pixel, got {tuple(block)}")
    out = np.zeros(mask.shape, np.uint8)
    on = mask > 0
    rows = np.flatnonzero(on.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(on.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    h, w = y1 - y0, x1 - x0
    kh = max(1, round(h / block[0]))
    kw = max(1, round(w / block[1]))
    if rng is not None:
        kh = int(rng.integers(1, kh + 1))
        kw = int(rng.integers(1, kw + 1))
    ys = np.linspace(0, h, kh + 1).round().astype(int)
    xs = np.linspace(0, w, kw + 1).round().astype(int)
    box = on[y0:y1, x0:x1].astype(np.int32)
    # Sum the mask over each block with two reduceat passes (rows, then cols).
    per_row_band = np.add.reduceat(box, ys[:-1], axis=0)
    per_block = np.add.reduceat(per_row_band, xs[:-1], axis=1) > 0
    filled = np.repeat(np.repeat(per_block, np.diff(ys), axis=0), np.diff(xs), axis=1)
    out[y0:y1, x0:x1] = np.where(filled, 255, 0).astype(np.uint8)
    return out


# -- skeleton maps ---------------------------------------------------------------
def default_thickness(height: int, width: int) -> int:
    """Limb half-width in pixels: 4 px at 512, never under 1."""
    return max(1, round(4 * min(height, width) / 512))


def draw_skeleton(keypoints: np.ndarray, height: int, width: int, *,
                  thickness: int | None = None) -> np.ndarray:
    """OpenPose-style RGB skeleton map of one frame.

    ``keypoints`` is float32 [18, 4] (x, y, depth, visibility) in OpenPose-18
    order. Keypoints with visibility 0 are absent and skipped; occluded ones
    (0.5) are drawn too -- the generator needs the whole pose, and occlusion
    is applied later by the depth test.
    """
    kp = _check_keypoints(keypoints)
    t = default_thickness(height, width) if thickness is None else int(thickness)
    canvas = np.zeros((height, width, 3), np.uint8)
    present = kp[:, 3] > 0
    for i, (a, b) in enumerate(KEYPOINT_LIMBS):
        if not (present[a] and present[b]):
            continue
        (xa, ya), (xb, yb) = kp[a, :2], kp[b, :2]
        length = math.hypot(xb - xa, yb - ya)
        if length < 1e-3:
            continue
        angle = math.degrees(math.atan2(yb - ya, xb - xa))
        centre = (int(round((xa + xb) / 2)), int(round((ya + yb) / 2)))
        poly = cv2.ellipse2Poly(centre, (int(round(length / 2)), t), int(round(angle)), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, OPENPOSE_COLORS[i].tolist(), lineType=cv2.LINE_AA)
    for j in np.flatnonzero(present):
        x, y = kp[j, :2]
        cv2.circle(canvas, (int(round(x)), int(round(y))), t, OPENPOSE_COLORS[j].tolist(), -1,
                   lineType=cv2.LINE_AA)
    return canvas


def structured_depth(character_depth: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """Character depth kept only where the skeleton is drawn ("structured depth").

    Depth is normalised over the kept pixels to (0, 1], nearer = larger, so a
    value of 0 always means "no skeleton here". Skeleton pixels where the body
    has no surface (limb lines cut across a gap) take the nearest body depth.
    """
    depth = np.asarray(character_depth, np.float32)
    drawn = np.asarray(skeleton).reshape(depth.shape + (-1,)).max(axis=-1) > 0
    out = np.zeros(depth.shape, np.float32)
    filled = fill_missing_depth(depth)
    keep = drawn & has_surface(filled)
    if not keep.any():
        return out
    d = filled[keep]
    near, far = float(d.min()), float(d.max())
    # Nearest pixel -> 1.0, farthest -> 0.2: the floor keeps far limbs distinct from "none".
    out[keep] = 1.0 - 0.8 * (d - near) / max(far - near, 1e-6)
    return out


def fill_missing_depth(depth: np.ndarray) -> np.ndarray:
    """Give every no-surface pixel the depth of its nearest surface pixel.

    Generated characters overhang the exact body (hair, loose cloth), and
    those pixels need a depth for the occlusion test: the nearest body depth
    is the honest guess. A depth map with no surface at all is returned as is.
    """
    depth = np.asarray(depth, np.float32)
    valid = has_surface(depth)
    if valid.all() or not valid.any():
        return depth.copy()
    # distanceTransformWithLabels labels each zero pixel of its input (here:
    # the valid pixels) in row-major order; every pixel gets the label of its
    # nearest zero pixel.
    _, labels = cv2.distanceTransformWithLabels(
        (~valid).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    return depth[valid][labels - 1]


# -- compositing -----------------------------------------------------------------------
def luminance(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def composite_character(environment: np.ndarray, character: np.ndarray, alpha: np.ndarray, *,
                        character_depth: np.ndarray | None = None,
                        scene_depth: np.ndarray | None = None,
                        feather_px: float = 1.5,
                        match_brightness: bool = True,
                        region: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Composite a generated character over the exact environment render.

    Returns (rgba uint8 [H, W, 4] with alpha 255, matte uint8 [H, W]) where
    the matte is the character's final coverage after occlusion.

    - Occlusion: wherever the scene is nearer to the camera than the
      character (a pillar in front, the table edge), the environment wins.
      Character pixels with no body depth take their nearest body depth.
    - ``region`` (e.g. the dilated character mask): outside it the output is
      the environment's own pixels, bit for bit.
    - Feathering softens the matte inward only, so no colour from outside the
      character's alpha (often black) bleeds into the scene as a halo.
    - Brightness: the character follows the light where it stands: the
      environment around it against the whole frame (half-way in log space,
      gain clamped to [0.7, 1.3]), so it darkens in a shadow without losing
      its colours.
    """
    env = np.asarray(environment)
    chr_ = np.asarray(character)
    h, w = env.shape[:2]
    for name, arr, shape in (("environment", env, (h, w, 3)), ("character", chr_, (h, w, 3))):
        if arr.shape != shape or arr.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8 {list(shape)}, got {arr.dtype}{list(arr.shape)}")
    a = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    if a.shape != (h, w):
        raise ValueError(f"alpha must have shape {[h, w]}, got {list(a.shape)}")
    a = a.copy()

    if character_depth is not None and scene_depth is not None:
        cd = fill_missing_depth(np.asarray(character_depth, np.float32))
        sd = np.asarray(scene_depth, np.float32)
        if cd.shape != (h, w) or sd.shape != (h, w):
            raise ValueError(f"character_depth and scene_depth must have shape {[h, w]}")
        # A small relative tolerance keeps contact points (feet on the floor,
        # hand on the box) from flickering between in front and behind.
        occluded = sd < cd * (1.0 - 1e-3)
        a[occluded] = 0.0

    if feather_px > 0:
        soft = cv2.GaussianBlur(a, (0, 0), sigmaX=float(feather_px))
        a = np.minimum(a, soft)
    if region is not None:
        a *= (np.asarray(region) > 0)

    chr_f = chr_.astype(np.float32)
    if match_brightness:
        chr_f *= _exposure_gain(env, chr_, a)
    out = env.astype(np.float32) * (1.0 - a[..., None]) + chr_f * a[..., None]
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    rgba[..., 3] = 255
    if region is not None:
        # Exactness outside the region, not just "close": no float round trip.
        outside = np.asarray(region) == 0
        rgba[..., :3][outside] = env[outside]
    matte = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    return rgba, matte


def _exposure_gain(env: np.ndarray, character: np.ndarray, a: np.ndarray) -> float:
    # Compare the light where the character stands (the ring of environment
    # around it) with the frame as a whole: a character walking into a shadow
    # darkens, one under a lamp brightens. Comparing with the character's own
    # pixels instead would confuse albedo with light (a white shirt is not
    # over-exposed) -- the demo measured that as a 2 dB PSNR loss.
    inside = a > 0.5
    if inside.sum() < 16:
        return 1.0
    ring = cv2.dilate(inside.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~inside
    if ring.sum() < 16:
        return 1.0
    lum = luminance(env)
    gain = math.sqrt((float(lum[ring].mean()) + 1.0) / (float(lum.mean()) + 1.0))
    return float(np.clip(gain, 0.7, 1.3))


def _check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    kp = np.asarray(keypoints, np.float32)
    if kp.ndim != 2 or kp.shape[1] != 4 or kp.shape[0] != len(OPENPOSE_COLORS):
        raise ValueError(f"keypoints must be float32 [18, 4] (x, y, depth, visibility), got {list(kp.shape)}")
    return kp
