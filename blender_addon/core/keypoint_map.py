"""The user's keypoint mapping and the face offsets (bpy-free).

The automatic mapping lives in ``rig_map`` (names in ``rig_names``). The
user may override any keypoint with a JSON mapping such as
``{"left_wrist": "hand_ik.L", "nose": ["Nose", "tail"]}``: a keypoint sits on
the named bone's *head* (or *tail*).

Face points (nose, eyes, ears) are rarely rigged. When no face bone is found
they are *derived* from the head bone with fixed offsets, see FACE_OFFSETS.
"""
from __future__ import annotations

import json
from typing import Mapping

from . import conventions

HEAD, TAIL = "head", "tail"

# Derived face points, in head-size units (0.4 torso lengths, about the length
# of a Mixamo head bone), in a frame built from the rig's own rest pose:
# up = mid-hips -> neck, left = right -> left shoulder, forward = left x up
# (roll conventions differ between rigs; the body does not). Offsets are from
# the head bone's head (the top of the neck), or placed so that rigged eyes
# land on their offsets.
FACE_OFFSETS = {  # keypoint: (left, up, forward)
    "nose": (0.0, 0.35, 0.45),
    "right_eye": (-0.18, 0.5, 0.4),
    "left_eye": (0.18, 0.5, 0.4),
    "right_ear": (-0.4, 0.4, 0.0),
    "left_ear": (0.4, 0.4, 0.0),
}
MIN_MAPPED_BODY = 4


class MappingError(ValueError):
    """The rig cannot be mapped; the message says what to fix."""


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
        if key not in conventions.KEYPOINT_NAMES + conventions.HAND_KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES:
            raise MappingError(f"keypoint mapping names unknown keypoint {key!r}; expected one of "
                               f"{list(conventions.KEYPOINT_NAMES)} or a hand point such as 'left_hand_index_tip'")
        if isinstance(value, str):
            out[key] = (value, HEAD)
        elif (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str)
              and value[1] in (HEAD, TAIL)):
            out[key] = (value[0], value[1])
        else:
            raise MappingError(f"keypoint mapping for {key!r} must be a bone name or "
                               f"[bone, 'head'|'tail'], got {value!r}")
    return out
