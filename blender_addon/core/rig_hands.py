"""Fingers (bpy-free): 21 points per hand in the OpenPose hand layout.

Finger chains under the wrist come from the names (Mixamo ``HandIndex1``,
Rigify ``f_index.01``, VRM ``Little1`` ...), or, for numbered "Finger"
chains and nameless hands, from the hand's geometry.
"""
from __future__ import annotations

import numpy as np

from .keypoint_map import HEAD
from .rig_model import LAYER_RANK, Rig, joint_at


FINGER_ORDER = ("thumb", "index", "middle", "ring", "pinky")


def finger_chains(rig: Rig, wrist: str, kids: dict | None) -> dict:
    """{finger: [bones base -> tip]} under the wrist: by name, else by structure."""
    named: dict[str, list] = {}
    for n, i in rig.info.items():
        if i.role == "finger" and not i.rejected and not i.metacarpal and rig.is_ancestor(wrist, n):
            f = "middle" if i.finger == "finger" else str(i.finger)
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
            top = min(LAYER_RANK[rig.info[n].layer] for n in bs)
            bs = [n for n in bs if LAYER_RANK[rig.info[n].layer] == top]
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


def _order_fingers(rig: Rig, wrist: str, chains: list, thumb=None) -> dict:
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


def finger_points(rig: Rig, chain, how) -> list:
    """Four Joints (base -> tip) for one finger; None where the rig has fewer."""
    pts = [joint_at(rig, b, HEAD, how) for b in chain]
    last = chain[-1]
    if not (rig.info[last].end or (len(chain) >= 4 and not rig.children[last])):
        pts.append(joint_at(rig, last, "tail", how))
    if len(pts) > 4:
        pts = pts[:3] + pts[-1:]
    slots: list = [None] * 4
    slots[0], slots[3] = pts[0], pts[-1]
    for k, p in enumerate(pts[1:-1][:2]):
        slots[1 + k] = p
    return slots
