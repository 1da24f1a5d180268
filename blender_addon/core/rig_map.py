"""Which bone carries each keypoint, for any humanoid rig (bpy-free).

In: the armature's bones (name, parent, rest head/tail in the armature's own
space, deform flag). Out: a ``RigMap`` giving every keypoint -- OpenPose-18
body and face, 21 per hand, the face box corners -- as a ``Joint``: a bone and
a rest-pose point that the bone carries rigidly (so a point need not be a
bone's head: derived face points and box corners ride on the head bone).

Order of evidence, per joint:
1. the user's mapping (``keypoint_map.parse_user_mapping``);
2. the naming conventions (``rig_names``) read together with the hierarchy:
   the elbow is the head of the first forearm segment, the shoulder the head
   of the first segment of the chain above it -- so twist bones and numbered
   splits never become joints, and "Shoulder" (Mixamo's clavicle, SMPL's
   upper arm) is resolved by where it sits;
3. the structure: hierarchy plus rest geometry of the deforming bones only
   (helpers and IK targets ignored), with up/left/forward found from the
   rig's mirror symmetry, so meaningless names still map.
Face points missing from the rig are derived from the head bone in a frame
built from the body (``keypoint_map.FACE_OFFSETS``).

Modules: ``rig_model`` (the data), ``rig_names`` (what a name says),
``rig_structure`` (the fallback), ``rig_hands`` (fingers), ``rig_face`` (face
points and box); this one puts them together.
"""
from __future__ import annotations

import numpy as np

from . import conventions
from .keypoint_map import HEAD, MIN_MAPPED_BODY, MappingError, parse_user_mapping
from .rig_face import derive_face, fit_head  # noqa: F401  (fit_head: used by the bpy layer through here)
from .rig_hands import FINGER_ORDER, finger_chains, finger_points
from .rig_model import (ALL_KEYPOINTS, BODY_KEYPOINTS, CONVENTION, DERIVED, GEOMETRY, SIDE,  # noqa: F401
                        STRUCTURE, USER, Bone, Joint, Rig, RigMap, joint_at)
from .rig_names import convention
from .rig_structure import structure

_LIMBS = {  # keypoint prefix -> (upper, middle, end) roles; keypoints (upper, middle, end)
    "arm": (("upperarm", "forearm", "hand"), ("shoulder", "elbow", "wrist")),
    "leg": (("thigh", "shin", "foot"), ("hip", "knee", "ankle")),
}


def _by_names(rig: Rig) -> tuple[dict, dict]:
    """Body/face joints the names give, plus {"head": bone, "left_hand": bone, ...}."""
    out, bones = {}, {}
    for side in ("l", "r"):
        s = SIDE[side]
        for limb, ((r_up, r_mid, r_end), (k_up, k_mid, k_end)) in _LIMBS.items():
            mid = rig.best(r_mid, side)
            end = rig.best(r_end, side, under=mid) if mid else rig.best(r_end, side)
            if mid is None and end is not None:
                mid = rig.walk_up(end)
            up = None
            if mid is not None:
                named = rig.best(r_up, side, above=mid)
                up = rig.chain_start(named) if named else rig.walk_up(mid)
            else:
                named = rig.best(r_up, side)
                if named is not None:
                    up = named
                    last = rig.chain_end(named)
                    out[f"{s}_{k_mid}"] = joint_at(rig, last, "tail", CONVENTION)
            if up is not None:
                out[f"{s}_{k_up}"] = joint_at(rig, up, HEAD, CONVENTION)
            if mid is not None:
                out[f"{s}_{k_mid}"] = joint_at(rig, mid, HEAD, CONVENTION)
            if end is not None:
                out[f"{s}_{k_end}"] = joint_at(rig, end, HEAD, CONVENTION)
                if limb == "arm":
                    bones[f"{s}_hand"] = end
        for part in ("eye", "ear"):
            b = rig.best(part, side)
            if b is not None:
                out[f"{s}_{part}"] = joint_at(rig, b, HEAD, CONVENTION)
    neck = rig.best("neck")
    if neck is not None:
        out["neck"] = joint_at(rig, neck, HEAD, CONVENTION)
    nose = rig.best("nose")
    if nose is not None:
        out["nose"] = joint_at(rig, nose, "tail", CONVENTION)
    head = rig.best("head")
    if head is None:
        eyes = [out[k].bone for k in ("left_eye", "right_eye") if k in out]
        head = rig.parent(eyes[0]) if eyes else None
    if head is None and neck is not None:
        head = neck
    if head is not None:
        bones["head"] = head
    return out, bones


def map_rig(bones, user_mapping=None, *, armature_name: str = "armature") -> RigMap:
    """Map every keypoint of ALL_KEYPOINTS; raise MappingError when fewer than
    MIN_MAPPED_BODY body joints map or a user-mapped bone does not exist."""
    bones = list(bones)
    rig = Rig(bones)
    user = parse_user_mapping(user_mapping)
    joints: dict = {k: None for k in ALL_KEYPOINTS}
    named, named_bones = _by_names(rig)
    joints.update(named)
    struct: dict = {}
    struct_bones: dict = {}
    if any(joints[k] is None for k in BODY_KEYPOINTS) or "head" not in named_bones:
        struct, struct_bones = structure(rig)
        for k, j in struct.items():
            if joints.get(k) is None:
                joints[k] = j
    for k, (bone, end) in user.items():
        if bone not in rig.bones:
            raise MappingError(f"keypoint mapping sends {k!r} to bone {bone!r}, which {armature_name!r} does not have")
        joints[k] = joint_at(rig, bone, end, USER)
    n_named = sum(1 for k in BODY_KEYPOINTS if joints[k] is not None and joints[k].how == CONVENTION)
    n_struct = sum(1 for k in BODY_KEYPOINTS if joints[k] is not None and joints[k].how == STRUCTURE)
    conv = convention(rig.bones) if n_named else STRUCTURE
    if n_named and n_struct:
        conv += " + structure"
    rm = RigMap(joints=joints, convention=conv)
    mapped = rm.body_mapped()
    if mapped < MIN_MAPPED_BODY:
        raise MappingError(f"Armature {armature_name!r} has no bones Inhabit recognises as a body "
                           f"({len(rig.bones)} bones, {mapped} of {len(BODY_KEYPOINTS)} body keypoints mapped by name "
                           "or by structure): use a humanoid rig, or set a keypoint mapping in the Inhabit panel")
    scale = float(np.ptp(np.array([b.head for b in bones], float), axis=0).max()) if bones else 1.0
    struct_axes = struct_bones.get("_axes") if struct_bones else structure(rig)[1].get("_axes")
    axes = _frame(joints, struct_axes, scale)
    _check_sides(rm, struct_axes)
    head = named_bones.get("head") or struct_bones.get("head")
    if head is not None and axes is not None:
        derive_face(rm, rig, head, axes)
    if axes is not None:
        for side in ("left", "right"):
            if f"{side}_toe" not in user and joints.get(f"{side}_ankle") is not None:
                joints[f"{side}_toe"] = _toe(rig, joints[f"{side}_ankle"], side[0], axes[0])
    for side in ("left", "right"):
        wrist_joint = joints.get(f"{side}_wrist")
        wrist = named_bones.get(f"{side}_hand") or (wrist_joint.bone if wrist_joint else None)
        if wrist is None:
            continue
        how = wrist_joint.how if wrist_joint else CONVENTION
        joints[f"{side}_hand_wrist"] = joints[f"{side}_hand_wrist"] or wrist_joint
        chains = finger_chains(rig, wrist, struct_bones.get("_kids"))
        for finger, chain in chains.items():
            named_chain = rig.info[chain[0]].role == "finger"
            pts = finger_points(rig, chain, CONVENTION if named_chain else STRUCTURE if how != USER else how)
            for p, slot in zip(pts, conventions.HAND_POINTS[1 + 4 * FINGER_ORDER.index(finger):][:4]):
                key = f"{side}_hand_{slot}"
                if key not in user:
                    joints[key] = p
    return rm


def _check_sides(rm: RigMap, struct_axes) -> None:
    """A note (shown with the mapping) when the names put "left" on the side the
    rest geometry calls right -- a mirrored rig or swapped side names."""
    if struct_axes is None:
        return
    left_axis = struct_axes[1]
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        ja, jb = rm.joints.get(a), rm.joints.get(b)
        if ja is None or jb is None or CONVENTION not in (ja.how, jb.how):
            continue
        if float((np.asarray(ja.point) - np.asarray(jb.point)) @ left_axis) < 0:
            rm.notes.append(f"{ja.bone!r} is named left but sits on the body's right (judged by where the feet "
                            "point): if the character is mirrored, fix the sides in the panel")
            return


def _toe(rig: Rig, ankle: Joint, side: str, up) -> Joint | None:
    """The front of the foot below ``ankle``: the toe chain's tip, or the ball of
    the foot when the tip is only an importer's guess (a tail pointing up)."""
    foot = ankle.bone
    named = rig.best("toe", side, under=foot)
    if named is None:
        kids = [c for c in rig.children[foot] if not rig.info[c].rejected and not rig.info[c].twist]
        named = max(kids, key=lambda c: np.linalg.norm(rig.head(c) - rig.head(foot)), default=None)
    chain = [named] if named is not None else [foot]
    while len(rig.children[chain[-1]]) == 1:
        chain.append(rig.children[chain[-1]][0])
    last = chain[-1]
    if last != foot and (rig.info[last].end or rig.info[last].role == "toe_end"):
        return joint_at(rig, last, HEAD, ankle.how)
    seg = rig.tail(last) - rig.head(last)
    length = float(np.linalg.norm(seg))
    if length > 1e-9 and abs(float(seg @ up)) < 0.5 * length:
        return joint_at(rig, last, "tail", ankle.how)
    return joint_at(rig, last, HEAD, ankle.how) if last != foot else None


def _frame(joints, struct_axes, scale: float):
    """Up, left, forward and a head-size unit (0.4 torso lengths) from the mapped body."""
    def p(k):
        j = joints.get(k)
        return None if j is None else np.asarray(j.point, float)
    neck, lh, rh, ls, rs = (p(k) for k in ("neck", "left_hip", "right_hip", "left_shoulder", "right_shoulder"))
    up = left = None
    if neck is not None and lh is not None and rh is not None:
        up = neck - (lh + rh) / 2
    if ls is not None and rs is not None:
        left = ls - rs
    elif lh is not None and rh is not None:
        left = lh - rh
    torso = float(np.linalg.norm(up)) if up is not None else 0.28 * scale
    if struct_axes is not None:
        up = struct_axes[0] if up is None else up
        left = struct_axes[1] if left is None else left
    if up is None or left is None or np.linalg.norm(up) < 1e-9 or torso <= 0:
        return None
    up = up / np.linalg.norm(up)
    left = left - up * float(left @ up)
    if np.linalg.norm(left) < 1e-9:
        return None
    left = left / np.linalg.norm(left)
    return up, left, np.cross(left, up), 0.4 * torso
