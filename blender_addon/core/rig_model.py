"""The bone mapping's data model (bpy-free): bones in, joints out.

``Bone`` is what the bpy layer extracts; a ``Joint`` is a bone plus a rest
point it carries; ``RigMap`` holds every keypoint's joint and how it was
found; ``Rig`` indexes the bones (parsed names, hierarchy) for the searches in
``rig_map``, ``rig_structure``, ``rig_hands`` and ``rig_face``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import conventions
from .keypoint_map import FACE_OFFSETS, HEAD
from .rig_names import NameInfo, classify


CONVENTION, STRUCTURE, USER, DERIVED, GEOMETRY = "convention", "structure", "user", "derived", "geometry"
BODY_KEYPOINTS = tuple(n for n in conventions.KEYPOINT_NAMES if n not in FACE_OFFSETS)
ALL_KEYPOINTS = conventions.KEYPOINT_NAMES + conventions.HAND_KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES
LAYER_RANK = {"def": 0, "org": 1, "": 2}  # a plain name beside ORG/DEF layers is a control
SIDE = {"l": "left", "r": "right"}


@dataclass(frozen=True)
class Bone:
    name: str
    parent: str | None
    head: tuple
    tail: tuple
    deform: bool = True


@dataclass(frozen=True)
class Joint:
    bone: str
    point: tuple   # rest position in armature space, carried rigidly by ``bone``
    how: str       # CONVENTION, STRUCTURE, USER or DERIVED


@dataclass
class RigMap:
    joints: dict                         # every name of ALL_KEYPOINTS -> Joint or None
    convention: str                      # naming family found ("structure" when names said nothing)
    face_box: tuple = ()                 # Joints whose projected bounding box is the face box
    face_centre: Joint | None = None
    face_front: Joint | None = None      # a point in front of the face centre (facing test)
    head_frame: tuple | None = None      # (head bone, origin, up, left, forward, unit) for fit_head
    notes: list = field(default_factory=list)

    def body_mapped(self) -> int:
        return sum(self.joints.get(k) is not None for k in BODY_KEYPOINTS)

    def rows(self, names=conventions.KEYPOINT_NAMES) -> list:
        """[(keypoint, bone, how)] with "" / "missing" for unmapped points."""
        return [(k, j.bone if j else "", j.how if j else "missing")
                for k in names for j in [self.joints.get(k)]]

    def hands_mapped(self) -> int:
        return sum(self.joints.get(k) is not None for k in conventions.HAND_KEYPOINT_NAMES)

    def describe(self) -> str:
        """Several lines: the convention, then keypoint -> bone (how)."""
        lines = [f"bone mapping ({self.convention}; {self.body_mapped()}/{len(BODY_KEYPOINTS)} body joints, "
                 f"{self.hands_mapped()}/{conventions.NUM_HAND_KEYPOINTS} hand points, "
                 f"face box {'yes' if self.face_box else 'no'}):"]
        for k, bone, how in self.rows(conventions.KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES):
            lines.append(f"  {k:<15} {bone or '-':<28} {how}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"convention": self.convention, "notes": list(self.notes),
                "joints": {k: ({"bone": j.bone, "how": j.how} if j else None) for k, j in self.joints.items()},
                "face_box": bool(self.face_box)}


class Rig:
    """Bones with their parsed names and the hierarchy, for the searches below."""

    def __init__(self, bones):
        self.bones = {b.name: b for b in bones}
        self.info: dict[str, NameInfo] = {n: classify(n) for n in self.bones}
        self.children: dict[str, list[str]] = {n: [] for n in self.bones}
        for b in self.bones.values():
            if b.parent in self.bones:
                self.children[b.parent].append(b.name)
        self.depth = {}
        for n in self.bones:
            d, p = 0, self.parent(n)
            while p is not None:
                d, p = d + 1, self.parent(p)
            self.depth[n] = d

    def parent(self, n):
        p = self.bones[n].parent
        return p if p in self.bones else None

    def head(self, n):
        return np.asarray(self.bones[n].head, float)

    def tail(self, n):
        return np.asarray(self.bones[n].tail, float)

    def is_ancestor(self, a, n) -> bool:
        p = self.parent(n)
        while p is not None:
            if p == a:
                return True
            p = self.parent(p)
        return False

    def best(self, role, side=None, *, under=None, above=None):
        """The bone that best plays ``role``: deforming first, then DEF- over ORG-
        over plain (Rigify's plain names are controls), then the first segment."""
        cands = [n for n, i in self.info.items()
                 if i.role == role and i.side == side and not i.rejected and not i.twist
                 and (under is None or self.is_ancestor(under, n))
                 and (above is None or self.is_ancestor(n, above))]
        if not cands:
            return None
        return min(cands, key=lambda n: (not self.bones[n].deform, LAYER_RANK[self.info[n].layer],
                                         self.depth[n], self.info[n].split, n))

    def chain_start(self, n):
        """First segment of a numbered split (``upper_arm.L.001`` -> ``upper_arm.L``)."""
        i = self.info[n]
        p = self.parent(n)
        while p is not None and i.role is not None and self.info[p].role == i.role and self.info[p].side == i.side:
            n, p = p, self.parent(p)
        return n

    def chain_end(self, n):
        """Last segment of a numbered split, following children of the same role."""
        i = self.info[n]
        while i.role is not None:
            nxt = [c for c in self.children[n] if self.info[c].role == i.role and self.info[c].side == i.side]
            if not nxt:
                break
            n = nxt[0]
        return n

    def walk_up(self, n):
        """The real segment above ``n``: twist bones and splits skipped."""
        p = self.parent(n)
        while p is not None and self.info[p].twist:
            p = self.parent(p)
        return None if p is None else self.chain_start(p)


def joint_at(rig: Rig, bone: str, end: str, how: str) -> Joint:
    p = rig.head(bone) if end == HEAD else rig.tail(bone)
    return Joint(bone, tuple(float(v) for v in p), how)
