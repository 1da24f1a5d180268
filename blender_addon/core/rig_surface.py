"""Where a pose estimator would put the points, from the skinned mesh (bpy-free).

Pose-driven models were trained on skeletons an estimator (DWPose / ViTPose
whole-body: COCO-WholeBody, drawn as OpenPose-18 plus toes) found on video.
An estimator sees the body's surface, not the rig's bones, so per point:

* neck: the midpoint of the two shoulders, in the image (as OpenPose-18 is
  drawn from COCO); applied at projection (``conventions.neck_between_shoulders``).
* toes: the mean of the big-toe and small-toe tips, found on the foot's
  mesh (its front, medial and lateral), whatever the toe bones are.
* nose, ears and eyes without eye bones: on the head's skin, hair, hats and
  other accessories left out (by the names of their bones, objects or
  materials); the ear is the outermost cap of the head at ear height, moved
  in by EAR_INSET (the canal, inside the rim); the nose is the most forward
  point of the face's centre line.
* eyes: the front of the eye meshes (objects or materials named "eye") when
  the character has them, else its eye bones, else on the head's skin.
* shoulders keep the rig's joint: the estimator's shoulder lies within 0.03
  torso lengths of it, above and inside on one test character, below and
  outside on the other, whose skin around the joint is alike; a rule on the
  mesh would move both one way (measured: docs/keypoints.md, "Shoulders").
* hips: COCO's hips are the hip joints as an annotator sees them through the
  clothes; the rig's hip joint is that point (docs/keypoints.md has the
  measurement), so hips keep the rig's joint.

Every such point is a ``Joint`` carried rigidly by one bone, like the rig's
own. A point that cannot be placed (no head mesh, hair over the face, no
foot mesh) is ``None`` -- absent, never guessed -- with one note.
"""
from __future__ import annotations

import re

import numpy as np

from .rig_model import USER, Joint, RigMap

SURFACE = "surface"
# Name tokens of what covers the body rather than being it (bones, objects, materials).
ACCESSORY_WORDS = ("hair", "hat", "cap", "helmet", "hood", "beard", "moustache", "mustache", "brow", "lash",
                   "glasses", "spectacle", "goggle", "mask", "scarf", "bun", "ponytail", "pony", "tail", "braid",
                   "bang", "fringe", "ribbon", "bow", "earring", "crown", "headband", "horn", "veil", "wig",
                   "accessory", "acc")
_TOKENS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
MIN_POINTS = 12       # fewer skinned vertices than this is no surface to fit
EAR_INSET = 0.15      # of the head's half-width, from the outermost skin at ear height


def is_accessory(name: str) -> bool:
    """True for names such as "Hair", "B_PTail1", "hat_mat", "EyeLashes"."""
    for tok in _TOKENS.findall(name or ""):
        t = tok.lower()
        if any(t == w or (len(w) > 3 and t.startswith(w)) for w in ACCESSORY_WORDS):
            return True
    return False


def fit_surface(rm: RigMap, skin: dict, accessories: dict, *, has_mesh: bool, eyes=()) -> RigMap:
    """Fill ``rm.seen`` (keypoint -> Joint or None) from rest-pose vertices in armature space.

    ``skin``: {bone: [N, 3]} vertices mostly weighted to that bone (or of an object parented to it),
    accessories left out; ``accessories``: the same for hair, hats and the like. ``has_mesh``: the
    armature drives a mesh at all (a bones-only rig keeps the rig's points: its proxy is made of them).
    ``eyes``: [(bone, [N, 3])] vertices of eye meshes (by object or material name), if any.
    """
    rm.seen = {}
    no_shoulder = [k for k in ("left_shoulder", "right_shoulder") if rm.seen_joint(k) is None]
    if no_shoulder and rm.joints.get("neck") is not None:
        rm.notes.append(f"no {' or '.join(no_shoulder)}: the neck (their midpoint) is left absent")
    if not has_mesh or rm.axes is None:
        return rm
    skin = {b: np.asarray(v, float).reshape(-1, 3) for b, v in skin.items() if len(v)}
    acc = {b: np.asarray(v, float).reshape(-1, 3) for b, v in accessories.items() if len(v)}
    _fit_toes(rm, skin)
    _fit_eye_meshes(rm, eyes)
    _fit_face(rm, skin, acc)
    for k, j in rm.joints.items():   # the user's own mapping wins over the mesh
        if j is not None and j.how == USER:
            rm.seen.pop(k, None)
    return rm


def is_eye(name: str) -> bool:
    """An eyeball's object or material ("Eye_L", "eyes", "EyeBall"), not lashes or brows."""
    toks = [t.lower() for t in _TOKENS.findall(name or "")]
    return any(t in ("eye", "eyes", "eyeball", "eyeballs") for t in toks) and not is_accessory(name)


def _fit_eye_meshes(rm: RigMap, eyes) -> None:
    """Each eye at the front of its eye mesh: the eye meshes split by side of the face."""
    if rm.head_frame is None or not eyes:
        return
    _head, origin, _up, left, fwd, _unit = rm.head_frame
    bone = eyes[0][0]
    pts = np.concatenate([np.asarray(v, float).reshape(-1, 3) for _, v in eyes])
    side = (pts - origin) @ left
    centre = float(np.median(side))
    for key, sel in (("left_eye", side > centre), ("right_eye", side < centre)):
        p = pts[sel]
        if len(p) < 4:
            continue
        f = (p - origin) @ fwd
        cap = p[f >= f.max() - 0.25 * float(np.ptp(f) or 1.0)]
        rm.seen[key] = Joint(bone, tuple(float(v) for v in cap.mean(0)), SURFACE)


def _under(rm: RigMap, bone: str) -> list:
    kids = rm.bone_children or {}
    out, todo = [], [bone]
    while todo:
        b = todo.pop()
        out.append(b)
        todo.extend(kids.get(b, ()))
    return out


def _points(skin: dict, bones) -> tuple[np.ndarray, list]:
    parts = [(b, skin[b]) for b in bones if b in skin]
    if not parts:
        return np.zeros((0, 3)), []
    owner = [b for b, v in parts for _ in range(len(v))]
    return np.concatenate([v for _, v in parts]), owner


def _fit_toes(rm: RigMap, skin: dict) -> None:
    if rm.axes is None:
        return
    up, left, _fwd, _unit = rm.axes
    missing = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        ankle = rm.joints.get(f"{side}_ankle")
        if ankle is None:
            continue
        pts, owner = _points(skin, _under(rm, ankle.bone))
        key = f"{side}_toe"
        if len(pts) < MIN_POINTS:
            rm.seen[key] = None
            missing.append(key)
            continue
        a = np.asarray(ankle.point, float)
        d = pts.mean(0) - a
        d -= up * float(d @ up)
        if np.linalg.norm(d) < 1e-9:
            rm.seen[key] = None
            missing.append(key)
            continue
        d /= np.linalg.norm(d)
        out = np.cross(up, d)
        out *= np.sign(float(out @ left)) * sign or 1.0   # away from the body's centre
        F, S = (pts - a) @ d, (pts - a) @ out
        length = float(F.max() - F.min())
        front = F > F.max() - 0.3 * length
        s_lo, s_hi = np.percentile(S[front], 5), np.percentile(S[front], 95)
        medial = front & (S <= s_lo + 0.5 * (s_hi - s_lo))
        lateral = front & (S >= s_lo + 0.75 * (s_hi - s_lo))
        # A tip is the mean of the vertices within 3% of the foot's length of the most forward
        # one: stable where a rounded toe box has several front vertices.
        big = medial & (F >= F[medial].max() - 0.03 * length)
        small = lateral & (F >= F[lateral].max() - 0.03 * length)
        tip = (pts[big].mean(0) + pts[small].mean(0)) / 2
        bone = owner[int(np.flatnonzero(big)[0])]
        rm.seen[key] = Joint(bone, tuple(float(v) for v in tip), SURFACE)
    if missing:
        rm.notes.append(f"no foot mesh skinned below the ankle for {', '.join(missing)}: left absent")


def _fit_face(rm: RigMap, skin: dict, acc: dict) -> None:
    if rm.head_frame is None:
        return
    head, origin, up, left, fwd, _unit = rm.head_frame
    bones = _under(rm, head)
    pts, owner = _points(skin, bones)
    face = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    from_meshes = {k: np.asarray(j.point) for k, j in rm.seen.items() if j is not None and k in face}
    placeable = [k for k in face if k in from_meshes
                 or (rm.joints.get(k) is not None and rm.joints[k].how in ("derived", "geometry"))]
    if len(pts) < 20:
        for k in placeable:
            rm.seen[k] = None
        if placeable:
            rm.notes.append("no head mesh is skinned to the head bone: " + ", ".join(placeable) + " left absent")
        return
    rel = pts - origin
    L, U, F = rel @ left, rel @ up, rel @ fwd
    lo = np.array([np.percentile(v, 1) for v in (L, U, F)])
    hi = np.array([np.percentile(v, 99) for v in (L, U, F)])
    size = hi - lo
    mid = (lo + hi) / 2
    frame = (origin, left, up, fwd)
    found: dict = dict(from_meshes)
    if "nose" in placeable:
        central = (np.abs(L - mid[0]) < 0.12 * size[0]) & (U > lo[1] + 0.2 * size[1]) & (U < lo[1] + 0.6 * size[1])
        if central.any():
            k = np.flatnonzero(central)[np.argmax(F[central])]
            found["nose"] = pts[k]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        key = f"{side}_eye"
        if key in placeable and key not in found:
            # Eyes sit half-way up the head, a third of the way out, on the front surface.
            want_l, want_u = mid[0] + sign * 0.3 * size[0] / 2, lo[1] + 0.5 * size[1]
            near = (np.abs(L - want_l) < 0.1 * size[0]) & (np.abs(U - want_u) < 0.08 * size[1])
            if near.any():
                k = np.flatnonzero(near)[np.argmax(F[near])]
                found[key] = pts[k]
        key = f"{side}_ear"
        if key in placeable:
            band = ((U > lo[1] + 0.3 * size[1]) & (U < lo[1] + 0.55 * size[1])
                    & (F > lo[2] + 0.2 * size[2]) & (F < lo[2] + 0.75 * size[2]))
            if band.any():
                s = sign * (L - mid[0])
                outer = band & (s >= s[band].max() - 0.08 * size[0])
                # The ear canal, where annotators click, lies inside the outer rim of the head.
                found[key] = pts[outer].mean(0) - sign * left * EAR_INSET * size[0] / 2
    covered = []
    acc_pts, _ = _points(acc, bones)
    for k in placeable:
        p = found.get(k)
        if p is None:
            rm.seen[k] = None
            continue
        if _covered(p, k, acc_pts, frame, size):
            rm.seen[k] = None
            covered.append(k)
            continue
        if k not in from_meshes:
            rm.seen[k] = Joint(head, tuple(float(v) for v in p), SURFACE)
    if covered:
        rm.notes.append("hair or an accessory covers " + ", ".join(covered) + ": left absent")
    missing = [k for k in placeable if k not in found]
    if missing:
        rm.notes.append("the head mesh has no surface for " + ", ".join(missing) + ": left absent")


def _covered(p, key: str, acc: np.ndarray, frame, size) -> bool:
    """An accessory vertex lies in front of the face point (outside of the ear), close across."""
    if not len(acc):
        return False
    origin, left, up, fwd = frame
    rel, q = acc - origin, p - origin
    if key.endswith("ear"):
        out = left if key.startswith("left") else -left
        depth, across = out, (up, fwd)
    else:
        depth, across = fwd, (up, left)
    r = 0.12 * float(max(size[0], size[1]))
    near = (np.abs((rel - q) @ across[0]) < r) & (np.abs((rel - q) @ across[1]) < r)
    return bool((near & ((rel - q) @ depth > 0.01 * r)).any())
