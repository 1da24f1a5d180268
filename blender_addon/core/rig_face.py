"""The face (bpy-free): derived face points, the face box, and their fit to
the head's own geometry.
"""
from __future__ import annotations

import numpy as np

from .keypoint_map import FACE_OFFSETS
from .rig_model import DERIVED, GEOMETRY, Joint, Rig, RigMap


def derive_face(rm: RigMap, rig: Rig, head: str, axes) -> None:
    up, left, fwd, unit = axes
    j = rm.joints
    origin = rig.head(head)
    eyes = [j[k] for k in ("left_eye", "right_eye")]
    if all(e is not None and e.how != DERIVED for e in eyes):
        mid = (np.asarray(eyes[0].point) + np.asarray(eyes[1].point)) / 2
        _, b, c = FACE_OFFSETS["left_eye"]
        origin = mid - unit * (b * up + c * fwd)

    def at(offset_left, offset_up, offset_fwd):
        p = origin + unit * (offset_left * left + offset_up * up + offset_fwd * fwd)
        return Joint(head, tuple(float(v) for v in p), DERIVED)
    for k, (a, b, c) in FACE_OFFSETS.items():
        if j[k] is None:
            j[k] = at(a, b, c)
    rm.head_frame = (head, origin, up, left, fwd, unit)
    _set_face_box(rm, head, origin + unit * (0.55 * up + 0.15 * fwd), (0.5 * unit, 0.6 * unit, 0.55 * unit),
                  (left, up, fwd), DERIVED)


def _set_face_box(rm: RigMap, head: str, centre, half, axes, how: str) -> None:
    """Eight corners of the head's box (carried by the head bone), its centre and front."""
    left, up, fwd = axes
    corners = []
    for sl in (-1, 1):
        for su in (-1, 1):
            for sf in (-1, 1):
                p = centre + sl * half[0] * left + su * half[1] * up + sf * half[2] * fwd
                corners.append(Joint(head, tuple(float(v) for v in p), how))
    rm.face_box = tuple(corners)
    rm.face_centre = Joint(head, tuple(float(v) for v in centre), how)
    front = centre + fwd * max(half[2], 1e-6) * 2
    rm.face_front = Joint(head, tuple(float(v) for v in front), how)


def fit_head(rm: RigMap, points) -> RigMap:
    """Refine the face from the head's own geometry: ``points`` are rest-pose
    vertices (armature space) skinned to the head bone. The face box becomes
    their extent in the rig's frame, and a nose or ears the rig lacks are put
    on the head's surface (the most forward point on the centre line, the
    most lateral points at mid-height) instead of fixed offsets."""
    pts = np.asarray(points, float).reshape(-1, 3)
    if rm.head_frame is None or len(pts) < 20:
        return rm
    head, origin, up, left, fwd, unit = rm.head_frame
    rel = pts - origin
    L, U, F = rel @ left, rel @ up, rel @ fwd
    lo = np.array([np.percentile(v, 1) for v in (L, U, F)])
    hi = np.array([np.percentile(v, 99) for v in (L, U, F)])
    if (hi - lo).min() < 0.1 * unit:
        return rm   # not a head: a flat or stray patch of weights
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    centre = origin + mid[0] * left + mid[1] * up + mid[2] * fwd
    _set_face_box(rm, head, centre, half, (left, up, fwd), GEOMETRY)
    j = rm.joints
    band = (U > lo[1] + 0.25 * (hi[1] - lo[1])) & (U < lo[1] + 0.75 * (hi[1] - lo[1]))
    if j["nose"] is not None and j["nose"].how == DERIVED:
        central = band & (np.abs(L - mid[0]) < 0.15 * (hi[0] - lo[0]))
        if central.any():
            k = np.flatnonzero(central)[np.argmax(F[central])]
            j["nose"] = Joint(head, tuple(float(v) for v in pts[k]), GEOMETRY)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        key = f"{side}_ear"
        if j[key] is not None and j[key].how == DERIVED and band.any():
            k = np.flatnonzero(band)[np.argmax(sign * L[band])]
            j[key] = Joint(head, tuple(float(v) for v in pts[k]), GEOMETRY)
    return rm
