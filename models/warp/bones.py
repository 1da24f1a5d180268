"""The skeleton's bones and their 2D maps from the reference to a frame.

Each bone gets an affine map from reference space to frame space: the torso
is fitted to neck, shoulders and hips (which also gives the body's scale in
the frame), the head to neck, nose, eyes and ears (rotation and uniform scale
only: a head does not squash), and each limb segment rotates onto its target
direction, stretches along the bone to the target length and scales across
it with the body. A bone whose keypoints are missing takes its parent's map.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blender_addon.core.conventions import KEYPOINT_NAMES

# OpenPose-18 keypoint name -> index.
KEYPOINT_INDEX = {n: i for i, n in enumerate(KEYPOINT_NAMES)}


@dataclass(frozen=True)
class Bone:
    name: str
    parent: str | None
    fit: tuple            # keypoints whose reference -> target motion defines the map
    segments: tuple       # keypoint pairs whose distance gives the skinning weight


def _seg(*pairs):
    return tuple((KEYPOINT_INDEX[a], KEYPOINT_INDEX[b]) for a, b in pairs)


def _limb(name, parent, a, b):
    return Bone(name, parent, (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b]), _seg((a, b)))


BONES = (
    Bone("torso", None,
         tuple(KEYPOINT_INDEX[n] for n in ("neck", "right_shoulder", "left_shoulder", "right_hip", "left_hip")),
         _seg(("neck", "right_hip"), ("neck", "left_hip"), ("right_shoulder", "left_shoulder"),
              ("right_hip", "left_hip"), ("right_shoulder", "right_hip"), ("left_shoulder", "left_hip"))),
    Bone("head", "torso",
         tuple(KEYPOINT_INDEX[n] for n in ("neck", "nose", "right_eye", "left_eye", "right_ear", "left_ear")),
         _seg(("neck", "nose"), ("nose", "right_eye"), ("nose", "left_eye"),
              ("right_eye", "right_ear"), ("left_eye", "left_ear"))),
    _limb("right_upper_arm", "torso", "right_shoulder", "right_elbow"),
    _limb("right_forearm", "right_upper_arm", "right_elbow", "right_wrist"),
    _limb("left_upper_arm", "torso", "left_shoulder", "left_elbow"),
    _limb("left_forearm", "left_upper_arm", "left_elbow", "left_wrist"),
    _limb("right_thigh", "torso", "right_hip", "right_knee"),
    _limb("right_shin", "right_thigh", "right_knee", "right_ankle"),
    _limb("left_thigh", "torso", "left_hip", "left_knee"),
    _limb("left_shin", "left_thigh", "left_knee", "left_ankle"),
)


def _perp(v):
    return np.array([-v[1], v[0]], np.float64)


def fit_affine(src: np.ndarray, dst: np.ndarray, *, similarity: bool = False) -> np.ndarray | None:
    """Least-squares 2x3 map src -> dst: full affine when the points span 2D
    well (and ``similarity`` is not asked for), else a similarity (rotation +
    uniform scale), else a translation."""
    n = len(src)
    if n == 0:
        return None
    if n >= 3 and not similarity:
        centred = src - src.mean(0)
        sv = np.linalg.svd(centred, compute_uv=False)
        if sv[1] > 0.15 * sv[0] and sv[0] > 1e-6:
            a = np.hstack([src, np.ones((n, 1))])
            m, *_ = np.linalg.lstsq(a, dst, rcond=None)
            return m.T
    if n >= 2:
        sc, dc = src.mean(0), dst.mean(0)
        s, d = src - sc, dst - dc
        denom = float((s ** 2).sum())
        if denom > 1e-9:
            cos_k = float((s * d).sum()) / denom
            sin_k = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denom
            lin = np.array([[cos_k, -sin_k], [sin_k, cos_k]])
            return np.hstack([lin, (dc - lin @ sc)[:, None]])
    return np.hstack([np.eye(2), (dst.mean(0) - src.mean(0))[:, None]])


# A body part seen end-on (the torso from the side, an arm pointing at the
# camera) projects to almost nothing; squashing it further than this fraction of
# the body's scale would make its map singular and its inverse explode.
MIN_SQUASH = 0.3


def _keep_invertible(m: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, float]:
    """Clamp the map's smaller stretch to MIN_SQUASH of its larger one, keeping
    where ``centre`` (the fitted points' centroid) lands; returns (map, body
    scale = the larger stretch)."""
    u, sv, vt = np.linalg.svd(m[:, :2])
    big = float(sv[0]) if sv[0] > 1e-6 else 1.0
    if sv[1] >= MIN_SQUASH * big:
        return m, big
    lin = (u * np.maximum(sv, MIN_SQUASH * big)) @ vt
    target_centre = m[:, :2] @ centre + m[:, 2]
    return np.hstack([lin, (target_centre - lin @ centre)[:, None]]), big


def limb_affine(ra, rb, ta, tb, across: float, *, min_stretch: float = 0.0) -> np.ndarray | None:
    """Map segment ra->rb onto ta->tb: rotate, stretch along the bone to the
    target length (at least ``min_stretch``), scale across it by ``across``
    (the body's scale). The map sends ra exactly to ta."""
    u, v = rb - ra, tb - ta
    lu, lv = float(np.hypot(*u)), float(np.hypot(*v))
    if lu < 1e-3:
        return None
    uh = u / lu
    vh = v / lv if lv > 1e-6 else uh
    stretch = max(lv / lu, min_stretch)
    lin = np.outer(vh, uh) * stretch + np.outer(_perp(vh), _perp(uh)) * across
    return np.hstack([lin, (ta - lin @ ra)[:, None]])


@dataclass
class Pose:
    """Per-bone maps ref -> frame, the target segments used for weights, bone depths."""
    transforms: dict            # bone name -> 2x3 float64
    segments: dict              # bone name -> float32 [n, 2, 2] target-space segments
    scale: float                # body scale ref -> frame (the torso map's larger stretch)
    depths: dict = field(default_factory=dict)   # bone name -> camera depth (when known)


def solve_pose(ref_kp: np.ndarray, target_xy: np.ndarray, target_usable: np.ndarray,
               target_depth: np.ndarray | None = None) -> Pose:
    """Per-bone affine maps from reference keypoints to target positions.

    ``target_usable`` marks keypoints that may drive the warp; a bone whose
    keypoints are not usable (absent in the frame or in the reference) falls
    back to its parent's map. ``target_depth`` (camera depth per keypoint,
    0 = unknown) gives each bone a depth for layering overlapping parts.
    """
    ref_xy = ref_kp[:, :2].astype(np.float64)
    ref_ok = ref_kp[:, 3] > 0
    tgt = target_xy.astype(np.float64)
    both = ref_ok & target_usable
    transforms: dict = {}
    scale = 1.0
    for bone in BONES:
        m = None
        if bone.name == "torso":
            idx = [k for k in bone.fit if both[k]]
            m = fit_affine(ref_xy[idx], tgt[idx])
            if m is None:
                raise ValueError("none of neck, shoulders and hips is known in both the frame and the reference")
            m, scale = _keep_invertible(m, ref_xy[idx].mean(0))
        elif bone.name == "head":
            idx = [k for k in bone.fit if both[k]]
            if len(idx) >= 2:
                # A head is round: it turns and scales but does not squash, so a
                # profile (eyes and ears in a vertical line) keeps its width.
                m = fit_affine(ref_xy[idx], tgt[idx], similarity=True)
                if m is not None:
                    # Nearly coinciding points give a degenerate fit: keep the head
                    # from ballooning or vanishing.
                    s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
                    if not (0.33 * scale < s < 3.0 * scale):
                        m = None
        else:
            a, b = bone.fit
            if both[a] and both[b]:
                m = limb_affine(ref_xy[a], ref_xy[b], tgt[a], tgt[b], scale, min_stretch=MIN_SQUASH * scale)
        if m is None:
            m = transforms[bone.parent]
        transforms[bone.name] = m
    depths = _bone_depths(target_depth, target_usable) if target_depth is not None else {}
    segments = {}
    for bone in BONES:
        segs = [(a, b) for a, b in bone.segments if ref_ok[a] and ref_ok[b]]
        if not segs:
            continue
        m = transforms[bone.name]
        pts = np.array([[ref_xy[a], ref_xy[b]] for a, b in segs])        # [n, 2, 2]
        segments[bone.name] = (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)
    return Pose(transforms, segments, scale, depths)


def _bone_depths(depth: np.ndarray, usable: np.ndarray) -> dict:
    """Camera depth of each bone: the mean of its usable keypoints' depths,
    else its parent's; bones with no known depth are left out."""
    depth = np.asarray(depth, np.float64)
    known = usable & (depth > 0)
    out: dict = {}
    for bone in BONES:
        idx = [k for k in bone.fit if known[k]]
        if idx:
            out[bone.name] = float(depth[idx].mean())
        elif bone.parent in out:
            out[bone.name] = out[bone.parent]
    return out


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine map, float32 (closed form: cheaper than a LAPACK call)."""
    a, b, c = m[0]
    d, e, f = m[1]
    det = a * e - b * d
    inv = np.array([[e, -b, b * f - c * e], [-d, a, c * d - a * f]], np.float64) / det
    return inv.astype(np.float32)


def adjacency(names: list) -> np.ndarray:
    """float32 [n, n]: 1 where two bones are the same or meet at a joint."""
    parent = {b.name: b.parent for b in BONES}
    n = len(names)
    links = np.eye(n, dtype=np.float32)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if parent.get(a) == b or parent.get(b) == a:
                links[i, j] = 1.0
    return links
