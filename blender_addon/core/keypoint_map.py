"""Which armature bone gives each OpenPose-18 keypoint (bpy-free).

A keypoint is taken from a bone's *head* or *tail* in world space. Tables
cover Mixamo (with or without the ``mixamorig:`` prefix, any ``xxx:`` prefix
in fact), Rigify deform/original bones (``DEF-``/``ORG-``) and Blender's human
metarig. The user may override any entry with a JSON mapping such as
``{"left_wrist": "hand_ik.L", "nose": ["Nose", "tail"]}``.

Face points (nose, eyes, ears) are rarely rigged. When no face bone is found
they are *derived* from the head bone with fixed offsets, see FACE_OFFSETS.
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping

from . import protocol

HEAD, TAIL = "head", "tail"

# keypoint -> candidate (bone, end) in order of preference, per rig family.
_MIXAMO = {
    "neck": [("Neck", HEAD)],
    "right_shoulder": [("RightArm", HEAD)],
    "right_elbow": [("RightForeArm", HEAD)],
    "right_wrist": [("RightHand", HEAD)],
    "left_shoulder": [("LeftArm", HEAD)],
    "left_elbow": [("LeftForeArm", HEAD)],
    "left_wrist": [("LeftHand", HEAD)],
    "right_hip": [("RightUpLeg", HEAD)],
    "right_knee": [("RightLeg", HEAD)],
    "right_ankle": [("RightFoot", HEAD)],
    "left_hip": [("LeftUpLeg", HEAD)],
    "left_knee": [("LeftLeg", HEAD)],
    "left_ankle": [("LeftFoot", HEAD)],
    "right_eye": [("RightEye", HEAD)],
    "left_eye": [("LeftEye", HEAD)],
}
_METARIG = {  # Blender's human metarig; Rigify prefixes DEF-/ORG- to the same names
    "neck": [("spine.004", HEAD)],
    "right_shoulder": [("upper_arm.R", HEAD)],
    "right_elbow": [("forearm.R", HEAD)],
    "right_wrist": [("hand.R", HEAD)],
    "left_shoulder": [("upper_arm.L", HEAD)],
    "left_elbow": [("forearm.L", HEAD)],
    "left_wrist": [("hand.L", HEAD)],
    "right_hip": [("thigh.R", HEAD)],
    "right_knee": [("shin.R", HEAD)],
    "right_ankle": [("foot.R", HEAD)],
    "left_hip": [("thigh.L", HEAD)],
    "left_knee": [("shin.L", HEAD)],
    "left_ankle": [("foot.L", HEAD)],
    "right_eye": [("eye.R", HEAD)],
    "left_eye": [("eye.L", HEAD)],
    "nose": [("nose", TAIL)],
}
HEAD_BONES = ("Head", "spine.006", "head")  # used to derive missing face points

RIG_TABLES = {"mixamo": _MIXAMO, "metarig": _METARIG}

# Derived face points, in units of the head bone's length, in a frame built
# from the rig itself: up = head bone direction, left = right->left shoulder,
# forward = left x up. (Roll conventions differ between rigs; the shoulders
# do not.) Offsets are from the head bone's head (the top of the neck).
FACE_OFFSETS = {  # keypoint: (left, up, forward)
    "nose": (0.0, 0.35, 0.45),
    "right_eye": (-0.18, 0.5, 0.4),
    "left_eye": (0.18, 0.5, 0.4),
    "right_ear": (-0.4, 0.4, 0.0),
    "left_ear": (0.4, 0.4, 0.0),
}
BODY_KEYPOINTS = tuple(n for n in protocol.KEYPOINT_NAMES if n not in FACE_OFFSETS)
MIN_MAPPED_BODY = 4


class MappingError(ValueError):
    """The rig cannot be mapped; the message says what to fix."""


def _strip(name: str) -> str:
    """'mixamorig:LeftArm' -> 'LeftArm'; 'DEF-thigh.L' -> 'thigh.L'."""
    name = name.rsplit(":", 1)[-1]
    for prefix in ("DEF-", "ORG-"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def parse_user_mapping(text_or_dict) -> dict:
    """Accept a JSON string or a dict; return {keypoint: (bone, end)}."""
    if text_or_dict in (None, ""):
        return {}
    data = text_or_dict
    if isinstance(text_or_dict, str):
        try:
            data = json.loads(text_or_dict)
        except ValueError as exc:
            raise MappingError(f"keypoint mapping is not valid JSON ({exc}); expected e.g. "
                               '{"left_wrist": "hand.L", "nose": ["Nose", "tail"]}') from None
    if not isinstance(data, Mapping):
        raise MappingError("keypoint mapping must be a JSON object {keypoint: bone or [bone, 'head'|'tail']}")
    out = {}
    for key, value in data.items():
        if key not in protocol.KEYPOINT_NAMES:
            raise MappingError(f"keypoint mapping names unknown keypoint {key!r}; "
                               f"expected one of {list(protocol.KEYPOINT_NAMES)}")
        if isinstance(value, str):
            out[key] = (value, HEAD)
        elif (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str)
              and value[1] in (HEAD, TAIL)):
            out[key] = (value[0], value[1])
        else:
            raise MappingError(f"keypoint mapping for {key!r} must be a bone name or "
                               f"[bone, 'head'|'tail'], got {value!r}")
    return out


def resolve(bone_names: Iterable[str], user_mapping=None, *, armature_name: str = "armature") -> dict:
    """Map every keypoint to ``(bone, end)``, ``("derived", head_bone)`` or None.

    Raises MappingError when fewer than MIN_MAPPED_BODY body keypoints map, or a
    user-mapped bone does not exist.
    """
    bones = list(bone_names)
    by_stripped: dict[str, str] = {}
    for b in bones:
        # Prefer DEF- over ORG- over bare names when several strip the same way.
        by_stripped.setdefault(_strip(b), b)
        if b.startswith("DEF-"):
            by_stripped[_strip(b)] = b
    user = parse_user_mapping(user_mapping)
    result: dict = {}
    for kp in protocol.KEYPOINT_NAMES:
        if kp in user:
            bone, end = user[kp]
            if bone not in bones:
                raise MappingError(f"keypoint mapping sends {kp!r} to bone {bone!r}, which {armature_name!r} does not have")
            result[kp] = (bone, end)
            continue
        result[kp] = None
        for table in RIG_TABLES.values():
            for cand, end in table.get(kp, ()):
                if cand in by_stripped:
                    result[kp] = (by_stripped[cand], end)
                    break
            if result[kp]:
                break
    head = next((by_stripped[h] for h in HEAD_BONES if h in by_stripped), None)
    for kp in FACE_OFFSETS:
        if result[kp] is None and head is not None:
            result[kp] = ("derived", head)
    mapped = sum(result[k] is not None for k in BODY_KEYPOINTS)
    if mapped < MIN_MAPPED_BODY:
        raise MappingError(f"Armature {armature_name!r} has no bones Inhabit recognises as a body "
                           f"({mapped} of {len(BODY_KEYPOINTS)} body keypoints mapped): use Mixamo, Rigify or "
                           "metarig bone names, or set a keypoint mapping in the Inhabit panel")
    return result


def derive_face_point(kp: str, head_pos, head_tail, left_shoulder, right_shoulder):
    """World position of a derived face keypoint (plain 3-sequences in, tuple out)."""
    import numpy as np
    h, t = np.asarray(head_pos, float), np.asarray(head_tail, float)
    up = t - h
    length = float(np.linalg.norm(up)) or 1.0
    up = up / length
    left = np.asarray(left_shoulder, float) - np.asarray(right_shoulder, float)
    left = left - up * float(left @ up)
    n = float(np.linalg.norm(left))
    left = left / n if n > 1e-9 else np.array([1.0, 0.0, 0.0])
    forward = np.cross(left, up)
    a, b, c = FACE_OFFSETS[kp]
    return tuple(h + length * (a * left + b * up + c * forward))
