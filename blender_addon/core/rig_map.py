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
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import protocol
from .keypoint_map import FACE_OFFSETS, HEAD, MIN_MAPPED_BODY, MappingError, parse_user_mapping
from .rig_names import NameInfo, classify, convention

CONVENTION, STRUCTURE, USER, DERIVED, GEOMETRY = "convention", "structure", "user", "derived", "geometry"
BODY_KEYPOINTS = tuple(n for n in protocol.KEYPOINT_NAMES if n not in FACE_OFFSETS)
ALL_KEYPOINTS = protocol.KEYPOINT_NAMES + protocol.HAND_KEYPOINT_NAMES + protocol.TOE_KEYPOINT_NAMES
FINGER_ORDER = ("thumb", "index", "middle", "ring", "pinky")
_LAYER_RANK = {"def": 0, "org": 1, "": 2}  # a plain name beside ORG/DEF layers is a control
_LIMBS = {  # keypoint prefix -> (upper, middle, end) roles; keypoints (upper, middle, end)
    "arm": (("upperarm", "forearm", "hand"), ("shoulder", "elbow", "wrist")),
    "leg": (("thigh", "shin", "foot"), ("hip", "knee", "ankle")),
}
_SIDE = {"l": "left", "r": "right"}


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

    def rows(self, names=protocol.KEYPOINT_NAMES) -> list:
        """[(keypoint, bone, how)] with "" / "missing" for unmapped points."""
        return [(k, j.bone if j else "", j.how if j else "missing")
                for k in names for j in [self.joints.get(k)]]

    def hands_mapped(self) -> int:
        return sum(self.joints.get(k) is not None for k in protocol.HAND_KEYPOINT_NAMES)

    def describe(self) -> str:
        """Several lines: the convention, then keypoint -> bone (how)."""
        lines = [f"bone mapping ({self.convention}; {self.body_mapped()}/{len(BODY_KEYPOINTS)} body joints, "
                 f"{self.hands_mapped()}/{protocol.NUM_HAND_KEYPOINTS} hand points, "
                 f"face box {'yes' if self.face_box else 'no'}):"]
        for k, bone, how in self.rows(protocol.KEYPOINT_NAMES + protocol.TOE_KEYPOINT_NAMES):
            lines.append(f"  {k:<15} {bone or '-':<28} {how}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"convention": self.convention, "notes": list(self.notes),
                "joints": {k: ({"bone": j.bone, "how": j.how} if j else None) for k, j in self.joints.items()},
                "face_box": bool(self.face_box)}


class _Rig:
    """Bones with their parsed names and the hierarchy, for the searches below."""

    def __init__(self, bones):
        self.bones = {b.name: b for b in bones}
        self.info: dict[str, NameInfo] = {n: classify(n) for n in self.bones}
        self.children = {n: [] for n in self.bones}
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
        return min(cands, key=lambda n: (not self.bones[n].deform, _LAYER_RANK[self.info[n].layer],
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


def _at(rig: _Rig, bone: str, end: str, how: str) -> Joint:
    p = rig.head(bone) if end == HEAD else rig.tail(bone)
    return Joint(bone, tuple(float(v) for v in p), how)


def _by_names(rig: _Rig) -> tuple[dict, dict]:
    """Body/face joints the names give, plus {"head": bone, "left_hand": bone, ...}."""
    out, bones = {}, {}
    for side in ("l", "r"):
        s = _SIDE[side]
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
                    out[f"{s}_{k_mid}"] = _at(rig, last, "tail", CONVENTION)
            if up is not None:
                out[f"{s}_{k_up}"] = _at(rig, up, HEAD, CONVENTION)
            if mid is not None:
                out[f"{s}_{k_mid}"] = _at(rig, mid, HEAD, CONVENTION)
            if end is not None:
                out[f"{s}_{k_end}"] = _at(rig, end, HEAD, CONVENTION)
                if limb == "arm":
                    bones[f"{s}_hand"] = end
        for part in ("eye", "ear"):
            b = rig.best(part, side)
            if b is not None:
                out[f"{s}_{part}"] = _at(rig, b, HEAD, CONVENTION)
    neck = rig.best("neck")
    if neck is not None:
        out["neck"] = _at(rig, neck, HEAD, CONVENTION)
    nose = rig.best("nose")
    if nose is not None:
        out["nose"] = _at(rig, nose, "tail", CONVENTION)
    head = rig.best("head")
    if head is None:
        eyes = [out[k].bone for k in ("left_eye", "right_eye") if k in out]
        head = rig.parent(eyes[0]) if eyes else None
    if head is None and neck is not None:
        head = neck
    if head is not None:
        bones["head"] = head
    return out, bones


# -- structure ----------------------------------------------------------------------
def _body_axes(points: np.ndarray):
    """(up, left, forward) unit vectors in armature space from rest geometry.

    The lateral axis is the one the rig is mirror-symmetric about; up is the
    longer of the other two, pointing away from the end whose extremes are
    spread sideways (the feet); forward is where the feet's lowest points lie.
    """
    ext = points.max(0) - points.min(0)
    # The mirror plane passes through the median: the central bones (spine,
    # head, face) sit on it even when the two hands reach unequally far.
    mids = np.median(points, axis=0)
    errs = []
    for a in range(3):
        q = points.copy()
        q[:, a] = 2 * mids[a] - q[:, a]
        d = np.sqrt(((q[:, None, :] - points[None, :, :]) ** 2).sum(-1)).min(1)
        # Relative to how far the mirror moved the points: mirroring across a
        # thin axis (front-back) moves little, so its raw error is small too.
        moved = float(np.abs(points[:, a] - mids[a]).mean()) * 2 or 1e-9
        errs.append(float(np.mean(d)) / moved)
    lat = int(np.argmin(errs))
    others = [a for a in range(3) if a != lat]
    upax = max(others, key=lambda a: ext[a])
    fwdax = [a for a in others if a != upax][0]
    c = points[:, upax]
    lo, hi = c.min(), c.max()
    # Only the very ends: in a T-pose the arms lie a head's height below the top.
    band = 0.03 * (hi - lo)
    spread = lambda sel: float(np.abs(points[sel, lat] - mids[lat]).mean()) if sel.any() else 0.0  # noqa: E731
    up_sign = 1.0 if spread(c > hi - band) <= spread(c < lo + band) else -1.0
    low = (c < lo + band) if up_sign > 0 else (c > hi - band)
    df = float(points[low, fwdax].mean() - points[:, fwdax].mean())
    # Feet point forward; with no feet to tell, Blender's convention (front = -Y).
    fwd_sign = np.sign(df) if abs(df) > 0.01 * float(ext.max()) else (-1.0 if fwdax == 1 else 1.0)
    e = np.eye(3)
    up, fwd = e[upax] * up_sign, e[fwdax] * fwd_sign
    return up, np.cross(up, fwd), fwd, mids


def _structure(rig: _Rig) -> tuple[dict, dict]:
    keep = [n for n in rig.bones if rig.bones[n].deform and not rig.info[n].rejected]
    if len(keep) < 8:
        keep = [n for n in rig.bones if not rig.info[n].rejected]
    keep_set = set(keep)
    par, kids = {}, {n: [] for n in keep}
    for n in keep:
        p = rig.parent(n)
        while p is not None and p not in keep_set:
            p = rig.parent(p)
        par[n] = p
        if p is not None:
            kids[p].append(n)
    # Axes from the heads only: importers guess tails (glTF has none).
    up, left, fwd, centre = _body_axes(np.array([rig.head(n) for n in keep]))
    _join_islands(rig, keep, par, kids, left, centre)
    leaves = [n for n in keep if not kids[n]]
    if len(leaves) < 4:
        return {}, {}
    tip = {n: (rig.tail(n) if not kids[n] else rig.head(n)) for n in keep}
    pts = np.array([rig.head(n) for n in keep] + [rig.tail(n) for n in leaves])
    height = float((pts @ up).max() - (pts @ up).min()) or 1.0
    U = lambda p: float((p - centre) @ up)    # noqa: E731
    L = lambda p: float((p - centre) @ left)  # noqa: E731

    def path(a, b):  # a ancestor of b (or equal) -> [a .. b]
        out = [b]
        while out[-1] != a and par[out[-1]] is not None:
            out.append(par[out[-1]])
        return out[::-1] if out[-1] == a else None

    def ancestors(n):
        out = []
        while n is not None:
            out.append(n)
            n = par[n]
        return out

    def lca(a, b):
        sa = ancestors(a)
        for n in ancestors(b):
            if n in sa:
                return n
        return None

    side_leaves = {s: [n for n in leaves
                       if (L(tip[n]) > 0.02 * height) == (s == "l") and abs(L(tip[n])) > 0.02 * height]
                   for s in ("l", "r")}
    if not side_leaves["l"] or not side_leaves["r"]:
        return {}, {}
    feet = {s: min(side_leaves[s], key=lambda n: U(tip[n])) for s in ("l", "r")}
    pelvis = lca(feet["l"], feet["r"])
    if pelvis is None:
        return {}, {}
    leg_nodes = {s: set(path(pelvis, feet[s])[1:]) for s in ("l", "r")}
    central = [n for n in leaves if abs(L(tip[n])) < 0.12 * height and n not in leg_nodes["l"] | leg_nodes["r"]]
    if not central:
        return {}, {}
    top = max(central, key=lambda n: U(tip[n]))
    # The spine may branch off above the legs' common bone (Character Creator:
    # Hip -> Pelvis -> thighs, Hip -> Waist -> spine).
    base = lca(pelvis, top)
    spine = path(base, top) if base is not None else None
    if spine is None:
        return {}, {}
    out, bones = {}, {}
    for s in ("l", "r"):
        name = _SIDE[s]
        legs = path(pelvis, feet[s])[1:]
        # The hip: the first leg joint off the midline (pelvis-side bones -- CMU's LHipJoint,
        # Rigify's pelvis.L -- start on it); a fixed fraction of height, since mocap rests
        # with the feet splayed far wider than the hips.
        hip = next((n for n in legs if abs(L(rig.head(n))) >= 0.03 * height), None)
        if hip is not None:
            seg = legs[legs.index(hip):]
            ankle = hip
            for prev, n in zip(seg, seg[1:]):
                v = rig.head(n) - rig.head(prev)
                if abs(v @ up) > 0.7 * (np.linalg.norm(v) or 1.0):
                    ankle = n
            if ankle != hip:
                out[f"{name}_hip"] = _at(rig, hip, HEAD, STRUCTURE)
                out[f"{name}_ankle"] = _at(rig, ankle, HEAD, STRUCTURE)
                knee = _middle_joint(rig, seg[:seg.index(ankle) + 1])
                if knee is not None:
                    out[f"{name}_knee"] = _at(rig, knee, HEAD, STRUCTURE)
        arm_leaves = [n for n in side_leaves[s] if n not in leg_nodes["l"] and n not in leg_nodes["r"]]
        if not arm_leaves:
            continue
        hand_leaf = max(arm_leaves, key=lambda n: abs(L(tip[n])))
        chest = lca(hand_leaf, top)
        arm = path(chest, hand_leaf)[1:] if chest is not None else None
        if not arm or len(arm) < 2:
            continue
        wrist = arm[-1]
        arc = _arc(rig, arm, tip[hand_leaf])
        for n in reversed(arm[:-1]):
            if len(kids[n]) >= 2:
                if arc[-1] - arc[arm.index(n)] < 0.4 * arc[-1]:
                    wrist = n
                break
        first = arm[0]
        shoulder = arm[1] if (len(arm) > 2 and arm[1] != wrist
                              and abs(L(rig.head(first))) < 0.5 * abs(L(rig.head(arm[1])))) else first
        out[f"{name}_shoulder"] = _at(rig, shoulder, HEAD, STRUCTURE)
        out[f"{name}_wrist"] = _at(rig, wrist, HEAD, STRUCTURE)
        seg = arm[arm.index(shoulder):arm.index(wrist) + 1]
        elbow = _middle_joint(rig, seg)
        if elbow is not None:
            out[f"{name}_elbow"] = _at(rig, elbow, HEAD, STRUCTURE)
        bones[f"{name}_hand"] = wrist
        bones[f"{name}_chest"] = chest
    chests = [bones.get("left_chest"), bones.get("right_chest")]
    chests = [c for c in chests if c in spine]
    if chests:
        ci = max(spine.index(c) for c in chests)
        neck = spine[ci + 1] if ci + 1 < len(spine) else spine[ci]
        out["neck"] = _at(rig, neck, HEAD, STRUCTURE)
        parent_of_top = par[top]
        head = top
        if parent_of_top is not None and parent_of_top in spine[ci:]:
            lp = np.linalg.norm(rig.tail(parent_of_top) - rig.head(parent_of_top))
            if np.linalg.norm(rig.tail(top) - rig.head(top)) < 0.6 * lp:
                head = parent_of_top
        # A head with eye/face bones branches: the last branching bone above the chest is the head.
        branching = [n for n in spine[ci + 1:-1] if len(kids[n]) >= 2]
        bones["head"] = branching[-1] if branching else head
    bones["_axes"] = (up, left, fwd)
    bones["_kids"] = kids
    return out, bones


def _join_islands(rig: _Rig, keep: list, par: dict, kids: dict, left, centre) -> None:
    """Join deforming bones whose parents are all helpers (a generated Rigify
    rig hangs DEF-thigh.L from ORG/MCH bones) to the deforming bone whose
    segment passes nearest their head, never one on the other side of the
    body (the two clavicles touch at the sternum), so the body is one tree."""
    roots = [n for n in keep if par[n] is None]
    if len(roots) < 2:
        return
    heads = np.array([rig.head(n) for n in keep])
    tails = np.array([rig.tail(n) for n in keep])
    reach = 0.15 * (float(np.ptp(heads, axis=0).max()) or 1.0)
    comp = {}
    for n in keep:  # component = the island root
        r = n
        while par[r] is not None:
            r = par[r]
        comp[n] = r
    size = {r: 0 for r in roots}
    for n in keep:
        size[comp[n]] += 1
    seg = tails - heads
    seg_len2 = np.maximum((seg ** 2).sum(1), 1e-12)
    side = (((heads + tails) / 2 - centre) @ left)
    margin = 0.1 * reach
    # The island nearest the real root stays the root (Rigify: DEF-spine under "root").
    main = min(roots, key=lambda r: (rig.depth[r], -size[r]))
    for r in sorted(roots, key=lambda r: size[r]):
        if r == main:
            continue
        p = rig.head(r)
        t = np.clip(((p - heads) * seg).sum(1) / seg_len2, 0.0, 1.0)
        d = np.linalg.norm(heads + t[:, None] * seg - p, axis=1)
        d[[comp[n] == comp[r] for n in keep]] = np.inf
        own = float(((rig.head(r) + rig.tail(r)) / 2 - centre) @ left)
        if abs(own) > margin:
            d[(np.sign(side) != np.sign(own)) & (np.abs(side) > margin)] = np.inf
        j = int(np.argmin(d))
        if not np.isfinite(d[j]) or d[j] > reach:
            continue
        target = keep[j]
        par[r] = target
        kids[target].append(r)
        old, new = comp[r], comp[target]
        for n in keep:
            if comp[n] == old:
                comp[n] = new


def _arc(rig, chain, end_point):
    pts = [rig.head(n) for n in chain] + [end_point]
    return np.concatenate([[0.0], np.cumsum([np.linalg.norm(b - a) for a, b in zip(pts, pts[1:])])])


def _middle_joint(rig, seg):
    """The joint between seg[0] and seg[-1] nearest half-way along the chain:
    the elbow/knee, not a twist split (those sit at a quarter or three quarters)."""
    if len(seg) < 3:
        return None
    pts = [rig.head(n) for n in seg]
    arc = np.concatenate([[0.0], np.cumsum([np.linalg.norm(b - a) for a, b in zip(pts, pts[1:])])])
    if arc[-1] <= 0:
        return None
    inner = range(1, len(seg) - 1)
    return seg[min(inner, key=lambda i: abs(arc[i] / arc[-1] - 0.5))]


# -- hands ---------------------------------------------------------------------------
def _finger_chains(rig: _Rig, wrist: str, kids: dict | None) -> dict:
    """{finger: [bones base -> tip]} under the wrist: by name, else by structure."""
    named: dict[str, list] = {}
    for n, i in rig.info.items():
        if i.role == "finger" and not i.rejected and not i.metacarpal and rig.is_ancestor(wrist, n):
            f = "middle" if i.finger == "finger" else i.finger
            named.setdefault(f, []).append(n)
    generic = set(named.get("middle", [])) & {n for n in named.get("middle", []) if rig.info[n].finger == "finger"}
    roots = [n for n in generic if rig.parent(n) not in generic]
    if len(roots) > 1:
        # Numbered "Finger" chains (3ds Max Biped: Finger0 = thumb .. Finger4 = pinky):
        # the names say "a finger", the hand's geometry says which.
        chains = []
        for r in roots:
            chain = [r]
            while True:
                nxt = [c for c in rig.children[chain[-1]] if c in generic]
                if not nxt:
                    break
                chain.append(nxt[0])
            chains.append(chain)
        thumb = sorted(named["thumb"], key=lambda n: rig.depth[n]) if "thumb" in named else None
        return _order_fingers(rig, wrist, chains, thumb)
    if named:
        out = {}
        for f, bs in named.items():
            # One layer per finger: deforming bones if any, else the best layer (ORG over controls).
            if any(rig.bones[n].deform for n in bs):
                bs = [n for n in bs if rig.bones[n].deform]
            top = min(_LAYER_RANK[rig.info[n].layer] for n in bs)
            bs = [n for n in bs if _LAYER_RANK[rig.info[n].layer] == top]
            out[f] = sorted(bs, key=lambda n: (rig.depth[n], rig.info[n].split))
        return out
    children = (kids or rig.children).get(wrist, [])
    chains = []
    for c in children:
        chain = [c]
        while len((kids or rig.children).get(chain[-1], [])) == 1:
            chain.append((kids or rig.children)[chain[-1]][0])
        if len(chain) >= 2 or (kids or rig.children).get(chain[-1]) == []:
            chains.append(chain)
    if len(chains) > 5:
        # Metacarpals (Rigify's DEF-palm) and helpers also hang from the hand: fingers are
        # the chains of most segments, then the longest.
        def rank(ch):
            return len(ch), sum(float(np.linalg.norm(rig.tail(n) - rig.head(n))) for n in ch)
        chains = sorted(chains, key=rank)[-5:]
    if len(chains) < 2:
        return {}
    return _order_fingers(rig, wrist, chains)


def _order_fingers(rig: _Rig, wrist: str, chains: list, thumb=None) -> dict:
    """Thumb = the chain starting nearest the wrist (unless named); the others
    index .. pinky by how far their base is from the thumb's."""
    if thumb is None:
        if len(chains) < 2:
            return {"middle": chains[0]} if chains else {}
        w = rig.head(wrist)
        thumb = min(chains, key=lambda ch: np.linalg.norm(rig.head(ch[0]) - w))
    chains = [ch for ch in chains if ch is not thumb][:4]
    rest = sorted((ch for ch in chains),
                  key=lambda ch: np.linalg.norm(rig.head(ch[0]) - rig.head(thumb[0])))
    names = {0: (), 1: ("middle",), 2: ("index", "pinky"), 3: ("index", "middle", "pinky"),
             4: ("index", "middle", "ring", "pinky")}
    out = {"thumb": thumb}
    out.update(dict(zip(names[len(rest)], rest)))
    return out


def _finger_points(rig: _Rig, chain, how) -> list:
    """Four Joints (base -> tip) for one finger; None where the rig has fewer."""
    pts = [_at(rig, b, HEAD, how) for b in chain]
    last = chain[-1]
    if not (rig.info[last].end or (len(chain) >= 4 and not rig.children[last])):
        pts.append(_at(rig, last, "tail", how))
    if len(pts) > 4:
        pts = pts[:3] + pts[-1:]
    slots = [None] * 4
    slots[0], slots[3] = pts[0], pts[-1]
    for k, p in enumerate(pts[1:-1][:2]):
        slots[1 + k] = p
    return slots


# -- the whole map -------------------------------------------------------------------
def map_rig(bones, user_mapping=None, *, armature_name: str = "armature") -> RigMap:
    """Map every keypoint of ALL_KEYPOINTS; raise MappingError when fewer than
    MIN_MAPPED_BODY body joints map or a user-mapped bone does not exist."""
    bones = list(bones)
    rig = _Rig(bones)
    user = parse_user_mapping(user_mapping)
    joints: dict = {k: None for k in ALL_KEYPOINTS}
    named, named_bones = _by_names(rig)
    joints.update(named)
    struct, struct_bones = ({}, {})
    if any(joints[k] is None for k in BODY_KEYPOINTS) or "head" not in named_bones:
        struct, struct_bones = _structure(rig)
        for k, j in struct.items():
            if joints.get(k) is None:
                joints[k] = j
    for k, (bone, end) in user.items():
        if bone not in rig.bones:
            raise MappingError(f"keypoint mapping sends {k!r} to bone {bone!r}, which {armature_name!r} does not have")
        joints[k] = _at(rig, bone, end, USER)
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
    struct_axes = struct_bones.get("_axes") if struct_bones else _structure(rig)[1].get("_axes")
    axes = _frame(joints, struct_axes, scale)
    _check_sides(rm, struct_axes)
    head = named_bones.get("head") or struct_bones.get("head")
    if head is not None and axes is not None:
        _face(rm, rig, head, axes)
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
        chains = _finger_chains(rig, wrist, struct_bones.get("_kids"))
        for finger, chain in chains.items():
            named_chain = rig.info[chain[0]].role == "finger"
            pts = _finger_points(rig, chain, CONVENTION if named_chain else STRUCTURE if how != USER else how)
            for p, slot in zip(pts, protocol.HAND_POINTS[1 + 4 * FINGER_ORDER.index(finger):][:4]):
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


def _toe(rig: _Rig, ankle: Joint, side: str, up) -> Joint | None:
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
        return _at(rig, last, HEAD, ankle.how)
    seg = rig.tail(last) - rig.head(last)
    length = float(np.linalg.norm(seg))
    if length > 1e-9 and abs(float(seg @ up)) < 0.5 * length:
        return _at(rig, last, "tail", ankle.how)
    return _at(rig, last, HEAD, ankle.how) if last != foot else None


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


def _face(rm: RigMap, rig: _Rig, head: str, axes) -> None:
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
