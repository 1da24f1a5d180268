"""The structural fallback (bpy-free): a body found from hierarchy and rest
geometry alone, for rigs whose names say nothing.

Only deforming bones count (IK targets and helpers are ignored); islands of
them hanging from helpers are re-joined; up/left/forward come from the rest
pose's mirror symmetry in the armature's own space.
"""
from __future__ import annotations

import numpy as np

from .keypoint_map import HEAD
from .rig_model import SIDE, STRUCTURE, Rig, joint_at


def body_axes(points: np.ndarray):
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


def structure(rig: Rig) -> tuple[dict, dict]:
    keep = [n for n in rig.bones if rig.bones[n].deform and not rig.info[n].rejected]
    if len(keep) < 8:
        keep = [n for n in rig.bones if not rig.info[n].rejected]
    keep_set = set(keep)
    par: dict[str, str | None] = {}
    kids: dict[str, list[str]] = {n: [] for n in keep}
    for n in keep:
        p = rig.parent(n)
        while p is not None and p not in keep_set:
            p = rig.parent(p)
        par[n] = p
        if p is not None:
            kids[p].append(n)
    # Axes from the heads only: importers guess tails (glTF has none).
    up, left, fwd, centre = body_axes(np.array([rig.head(n) for n in keep]))
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
        name = SIDE[s]
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
                out[f"{name}_hip"] = joint_at(rig, hip, HEAD, STRUCTURE)
                out[f"{name}_ankle"] = joint_at(rig, ankle, HEAD, STRUCTURE)
                knee = _middle_joint(rig, seg[:seg.index(ankle) + 1])
                if knee is not None:
                    out[f"{name}_knee"] = joint_at(rig, knee, HEAD, STRUCTURE)
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
        out[f"{name}_shoulder"] = joint_at(rig, shoulder, HEAD, STRUCTURE)
        out[f"{name}_wrist"] = joint_at(rig, wrist, HEAD, STRUCTURE)
        seg = arm[arm.index(shoulder):arm.index(wrist) + 1]
        elbow = _middle_joint(rig, seg)
        if elbow is not None:
            out[f"{name}_elbow"] = joint_at(rig, elbow, HEAD, STRUCTURE)
        bones[f"{name}_hand"] = wrist
        bones[f"{name}_chest"] = chest
    chests = [bones.get("left_chest"), bones.get("right_chest")]
    chests = [c for c in chests if c in spine]
    if chests:
        ci = max(spine.index(c) for c in chests)
        neck = spine[ci + 1] if ci + 1 < len(spine) else spine[ci]
        out["neck"] = joint_at(rig, neck, HEAD, STRUCTURE)
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


def _join_islands(rig: Rig, keep: list, par: dict, kids: dict, left, centre) -> None:
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
