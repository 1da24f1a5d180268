"""2D linear-blend skinning: the reference drawn in the frame through the bones' maps.

Warping is inverse (no holes): every frame pixel samples the reference
through each nearby bone's inverse map (``cv2.remap``) and the samples are
blended with weights that fall off with the distance to each bone in the
frame and with how much the sampled reference pixel belongs to that bone.
Near a joint both segments sample almost the same reference pixels, so
elbows and knees bend without tearing. The maps come from ``bones.py``.
"""
from __future__ import annotations

import cv2
import numpy as np

from .bones import BONES, KEYPOINT_INDEX, Pose, adjacency, invert_affine, solve_pose

def _segment_distance_sq(px, py, seg):
    """Squared distance of points (px, py) to the nearest of ``seg`` [n, 2, 2]."""
    best = None
    for (ax, ay), (bx, by) in seg:
        dx, dy = bx - ax, by - ay
        ll = dx * dx + dy * dy
        if ll > 1e-9:
            t = ((px - ax) * dx + (py - ay) * dy) * np.float32(1.0 / ll)
            np.minimum(np.maximum(t, 0.0, out=t), 1.0, out=t)   # np.clip is several times slower
        else:
            t = 0.0
        ex, ey = px - (ax + t * dx), py - (ay + t * dy)
        d = ex * ex + ey * ey
        best = d if best is None else np.minimum(best, d)
    return best


def bone_ownership(segments: dict, keypoints: np.ndarray, height: int, width: int, sigma: float) -> dict:
    """Soft share (float32 [h, w], summing to 1) of each bone in every reference pixel.

    The torso owns its whole shoulder-hip quadrilateral, not just the pixels
    near its outline: an arm hanging beside the body is the arm's, however
    close to the torso's side, so raising it leaves no ghost behind.
    """
    py, px = np.mgrid[0:height, 0:width].astype(np.float32)
    inside = _torso_quad(keypoints, height, width)
    return dict(zip(segments, _softmax_weights(px, py, segments, sigma,
                                               zero_inside={"torso": inside} if inside is not None else None)))


def _torso_quad(keypoints: np.ndarray, height: int, width: int) -> np.ndarray | None:
    corners = [KEYPOINT_INDEX[n] for n in ("right_shoulder", "left_shoulder", "left_hip", "right_hip")]
    if not (keypoints[corners, 3] > 0).all():
        return None
    quad = np.zeros((height, width), np.uint8)
    cv2.fillPoly(quad, [np.rint(keypoints[corners, :2]).astype(np.int32)], 1)
    return quad.astype(bool)


def _softmax_weights(px, py, segments: dict, sigma: float, *, zero_inside: dict | None = None,
                     prior: dict | None = None) -> np.ndarray:
    """Per-bone softmax of -distance^2 / (2 sigma^2), [n, h, w].

    ``zero_inside``: bone -> bool mask where its distance counts as 0.
    ``prior``: bone -> weight multiplier (added to the logit as its log).
    """
    logits = np.empty((len(segments),) + px.shape, np.float32)
    inv_two_sig2 = np.float32(1.0 / (2.0 * sigma * sigma))
    for i, (name, seg) in enumerate(segments.items()):
        d2 = _segment_distance_sq(px, py, seg)
        if zero_inside and name in zero_inside:
            d2[zero_inside[name]] = 0.0
        logits[i] = -d2 * inv_two_sig2
        if prior and name in prior:
            logits[i] += np.float32(np.log(prior[name]))
    # Softmax: far from every bone the nearest bone still owns the pixel.
    logits -= logits.max(axis=0, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=0, keepdims=True)
    return w


# Where a limb and the torso are equally near and at the same depth (a hand
# on the belly), the limb is drawn: limbs lie on the body, not inside it.
LIMB_PRIORITY = {b.name: 3.0 for b in BONES if b.name not in ("torso", "head")}


def _nearness(px, py, segments: dict, sigma: float) -> np.ndarray:
    """Softmax nearness of every pixel to every bone, [n, h, w].

    The weights vary on the scale of ``sigma``; when that spans several
    pixels they are computed on a half-resolution grid (placed at the centres
    of 2x2 blocks, which is where ``cv2.resize`` expects them) and upsampled,
    which saves a quarter of the frame time at no visible cost.
    """
    h, w = px.shape
    if sigma < 3.0 or h < 8 or w < 8:
        return _softmax_weights(px, py, segments, sigma, prior=LIMB_PRIORITY)
    coarse = _softmax_weights(px[::2, ::2] + 0.5, py[::2, ::2] + 0.5, segments, sigma, prior=LIMB_PRIORITY)
    fine = np.empty((len(coarse), h, w), np.float32)
    for c, f in zip(coarse, fine):
        cv2.resize(c, (w, h), dst=f, interpolation=cv2.INTER_LINEAR)
    return fine


# Nearness weights below this are treated as zero (they change no uint8 value).
NEGLIGIBLE = 1e-4
# A bone "claims" a pixel for layering when it brings at least this much body there.
CLAIM = 0.3
# Depth differences within this fraction of the depth are the same layer (a
# joint's two segments); beyond it the farther part fades over this fraction.
LAYER_TOLERANCE = 0.01
LAYER_SOFTNESS = 0.01


def blend_bones(pose: Pose, ownership: dict, ref_rgba: np.ndarray, height: int, width: int, *,
                sigma: float, roi: tuple[int, int, int, int]) -> np.ndarray:
    """The reference skinned into the frame: float32 [H, W, 4] (premultiplied
    colour, alpha).

    Each bone samples the reference through its own inverse map; the samples
    are blended rather than the source coordinates, because averaging two
    different maps (a squashed profile torso and a thigh) lands between the
    legs, on nothing. A bone's weight at a frame pixel is how much the
    reference pixel it samples belongs to that bone (``ownership``) and is
    character, times how near the pixel is to the bone in the frame: a swung
    forearm does not drag a copy of the torso along. Where two parts both
    bring body content, the one nearer the camera (``pose.depths``) wins: the
    far arm passes behind the torso, the near one in front. Near a joint both segments sample nearly the same
    reference pixels, so the blend is seamless. Only ``roi`` (x0, y0, x1, y1)
    is computed; the rest is transparent.
    """
    out = np.zeros((height, width, 4), np.float32)
    x0, y0, x1, y1 = roi
    if x1 <= x0 or y1 <= y0:
        return out
    py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    names = [n for n in pose.segments if n in ownership]
    near = _nearness(px, py, {n: pose.segments[n] for n in names}, sigma)
    coverage = np.zeros_like(px)
    claims = []   # (bone index, box, sample, own) of every bone that reaches the ROI
    for i, name in enumerate(names):
        # A bone's nearness weight vanishes a few sigma away from it: work only
        # on the box where it matters (most of the time per frame is saved here).
        matters = near[i] > NEGLIGIBLE
        rows = np.flatnonzero(matters.any(axis=1))
        cols = np.flatnonzero(matters.any(axis=0))
        if rows.size == 0:
            continue
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        m = pose.transforms[name]
        inv = invert_affine(m)
        bpx, bpy = px[box], py[box]
        bx = inv[0, 0] * bpx + inv[0, 1] * bpy + inv[0, 2]
        by = inv[1, 0] * bpx + inv[1, 1] * bpy + inv[1, 2]
        sample = cv2.remap(ref_rgba, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        own = cv2.remap(ownership[name], bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        coverage[box] += own
        claims.append((i, box, sample, own))

    depth_of = [pose.depths.get(n) for n in names]
    nearest = None
    if any(d is not None for d in depth_of):
        # Layering: where two parts both bring body content (the far arm swinging
        # behind the torso), the one nearer the camera wins.
        nearest = np.full(px.shape, np.inf, np.float32)
        for i, box, _, own in claims:
            part_depth = depth_of[i]
            if part_depth is not None:
                view = nearest[box]
                np.minimum(view, np.where(own > CLAIM, part_depth, np.inf), out=view)

    weights = []
    best = np.zeros_like(px)
    winner = np.zeros(px.shape, np.intp)
    for i, box, _sample, own in claims:
        w = own * near[i][box]
        z = depth_of[i]
        if nearest is not None and z is not None:
            behind = np.maximum(z - nearest[box] - LAYER_TOLERANCE * z, 0.0)
            w = w * np.exp(-behind / (LAYER_SOFTNESS * z))
        weights.append(w)
        better = w > best[box]
        best[box] = np.where(better, w, best[box])
        winner[box] = np.where(better, i, winner[box])
    # Only bones that meet at a joint blend: where the forearm wins, the torso
    # under it is dropped rather than mixed in (which would show both, faded).
    links = adjacency(names)
    acc = np.zeros(px.shape + (4,), np.float32)
    acc_w = np.zeros_like(px)
    for (i, box, sample, _), w in zip(claims, weights):
        w = w * links[i][winner[box]]
        acc[box] += w[..., None] * sample
        acc_w[box] += w
    blended = acc / np.maximum(acc_w, 1e-12)[..., None]
    # Coverage limits alpha: a pixel no bone claims stays empty. Half a claim
    # counts as a full one, because at a bent joint each segment claims only
    # part of the pixels on the outside of the bend; requiring the full sum
    # would thin the knee.
    alpha = np.minimum(blended[..., 3], np.minimum(1.0, 2.0 * coverage))
    scale = np.where(blended[..., 3] > 1e-6, alpha / np.maximum(blended[..., 3], 1e-6), 0.0)
    out[y0:y1, x0:x1] = blended * scale[..., None]
    return out


def character_roi(pose: Pose, ref_alpha: np.ndarray, ref_kp: np.ndarray,
                  height: int, width: int) -> tuple[int, int, int, int]:
    """Frame box that can receive character pixels: the target bones' box grown
    by how far the reference matte reaches beyond its bones (hair, hands, feet)."""
    ys, xs = np.nonzero(ref_alpha > 0)
    ok = ref_kp[:, 3] > 0
    kx, ky = ref_kp[ok, 0], ref_kp[ok, 1]
    reach = max(kx.min() - xs.min(), xs.max() - kx.max(), ky.min() - ys.min(), ys.max() - ky.max(), 0.0)
    pts = np.concatenate([s.reshape(-1, 2) for s in pose.segments.values()])
    stretch = max(1.0, *(float(np.abs(m[:, :2]).sum(axis=1).max()) for m in pose.transforms.values()))
    margin = reach * stretch + 4.0
    x0 = int(max(0, np.floor(pts[:, 0].min() - margin)))
    y0 = int(max(0, np.floor(pts[:, 1].min() - margin)))
    x1 = int(min(width, np.ceil(pts[:, 0].max() + margin) + 1))
    y1 = int(min(height, np.ceil(pts[:, 1].max() + margin) + 1))
    return x0, y0, x1, y1


OWNERSHIP_SHARPNESS = 0.5


class ReferenceRig:
    """What the warp needs of the reference, computed once per job."""

    def __init__(self, rgb_premult: np.ndarray, alpha: np.ndarray, keypoints: np.ndarray):
        self.rgba = np.dstack([rgb_premult, alpha]).astype(np.float32)
        self.alpha = alpha.astype(np.float32)
        self.keypoints = keypoints
        ok = keypoints[:, 3] > 0
        identity = solve_pose(keypoints, keypoints[:, :2], ok)
        h, w = alpha.shape
        self.sigma = blend_sigma(identity)
        # Each bone's share of each reference pixel, times the matte: what a bone
        # may paint. Computed once per job; the frames only sample it.
        # Ownership is sharper than the frame-side blend: a limb's pixels must
        # not stay behind with the torso when the limb moves away from it.
        shares = bone_ownership(identity.segments, keypoints, h, w, OWNERSHIP_SHARPNESS * self.sigma)
        self.ownership = {name: share * self.alpha for name, share in shares.items()}


def blend_sigma(pose: Pose) -> float:
    """Blend width: a fraction of the body's size, so joints stay smooth at any scale."""
    return max(1.5, 0.06 * _torso_length(pose))


def warp_reference(rig: ReferenceRig, pose: Pose, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference posed in the frame: (uint8 [H, W, 3] colour, float32 [H, W] alpha)."""
    roi = character_roi(pose, rig.alpha, rig.keypoints, height, width)
    out = blend_bones(pose, rig.ownership, rig.rgba, height, width, sigma=blend_sigma(pose), roi=roi)
    rgb = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = roi
    if x1 > x0 and y1 > y0:
        o = out[y0:y1, x0:x1]
        a = np.clip(o[..., 3:4], 1e-4, 1.0)
        rgb[y0:y1, x0:x1] = np.clip(o[..., :3] / a + 0.5, 0, 255).astype(np.uint8)
    return rgb, np.clip(out[..., 3], 0.0, 1.0)


def _torso_length(pose: Pose) -> float:
    seg = pose.segments.get("torso")
    if seg is None:
        return 50.0
    pts = seg.reshape(-1, 2)
    return float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0))
