"""Bones-only humanoid rigs in every naming convention, built in code (bpy-free).

One skeleton (metres, Blender's axes: facing -Y, left at +X, Z up), named
the way each family names it, with that family's extras: twist bones,
numbered splits, Rigify ORG/MCH/control layers, Unreal IK bones, end bones.
``EXPECTED`` says where each keypoint must land, whatever the names.
``scrambled`` renames every bone to noise and adds non-deforming IK helpers,
for the structural fallback. ``build_armature`` (bpy) makes a real armature.
"""
from __future__ import annotations

import random

import numpy as np

from backend.blender.humanoid import HUMANOID_CENTRE, HUMANOID_LEFT
from blender_addon.core.rig_map import Bone

# Joint positions of the left side (x > 0); the right side mirrors x. Torso, legs and feet are the project's
# humanoid (backend/blender/humanoid.py); the arms are held out level (T-pose), as the naming families'
# published rigs are, and the knee is bent a centimetre forward, as real rigs are.
_C, _L = HUMANOID_CENTRE, HUMANOID_LEFT
P = {
    "root": (0, 0, 0), "pelvis": _C["Hips"][0], "sp1": _C["Spine"][0], "sp2": _C["Spine1"][0],
    "sp3": _C["Spine2"][0], "neck": _C["Neck"][0], "neck2": tuple((np.add(_C["Neck"][0], _C["Neck"][1]) / 2).tolist()),
    "head": _C["Head"][0], "top": _C["Head"][1],
    "clav": _L["Shoulder"][0], "shoulder": _L["Arm"][0], "elbow": (0.42, 0, 1.36), "wrist": (0.65, 0, 1.30),
    "hip": _L["UpLeg"][0], "knee": tuple(np.add(_L["Leg"][0], (0, -0.01, 0)).tolist()), "ankle": _L["Foot"][0],
    "ball": _L["ToeBase"][0], "toetip": _L["ToeBase"][1], "eye": (0.035, -0.09, 1.65),
}
FINGER_BASE = {"thumb": (0.67, -0.04, 1.28), "index": (0.73, -0.03, 1.29), "middle": (0.73, -0.01, 1.29),
               "ring": (0.73, 0.01, 1.29), "pinky": (0.72, 0.03, 1.29)}
FINGER_STEP = 0.03


def _mid(a, b, t=0.5):
    return tuple(float(x) for x in np.asarray(P[a]) + t * (np.asarray(P[b]) - np.asarray(P[a])))


def pos(key, side=None):
    if not isinstance(key, str):
        key = tuple(float(v) for v in key)
        return key if side != "r" else (-key[0], key[1], key[2])
    p = P[key]
    return (-p[0], p[1], p[2]) if side == "r" else p


def finger_point(f, i, side=None):
    """i = 0 base (MCP / thumb CMC) .. 3 tip."""
    x, y, z = FINGER_BASE[f]
    p = (x + FINGER_STEP * i, y - (0.012 * i if f == "thumb" else 0.0), z)
    return pos(p, side)


EXPECTED = {"neck": pos("neck")}
for _s, _n in (("l", "left"), ("r", "right")):
    for _k, _p in (("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist"), ("hip", "hip"),
                   ("knee", "knee"), ("ankle", "ankle")):
        EXPECTED[f"{_n}_{_k}"] = pos(_p, _s)
# The toe keypoint: the toe bone's tip (every builder rig has a horizontal toe bone, or an end bone there).
EXPECTED_TOE = {"left_toe": pos("toetip", "l"), "right_toe": pos("toetip", "r")}
EXPECTED_HAND = {}
for _s, _n in (("l", "left"), ("r", "right")):
    for _f, _slots in (("thumb", ("cmc", "mcp", "ip", "tip")), ("index", ("mcp", "pip", "dip", "tip")),
                       ("middle", ("mcp", "pip", "dip", "tip")), ("ring", ("mcp", "pip", "dip", "tip")),
                       ("pinky", ("mcp", "pip", "dip", "tip"))):
        for _i, _slot in enumerate(_slots):
            EXPECTED_HAND[f"{_n}_hand_{_f}_{_slot}"] = finger_point(_f, _i, _s)


class _Rig:
    def __init__(self):
        self.bones: list[Bone] = []

    def add(self, name, parent, head, tail, deform=True):
        self.bones.append(Bone(name, parent, tuple(map(float, head)), tuple(map(float, tail)), deform))
        return name


def _sided(fmt_l, fmt_r=None):
    return {"l": fmt_l, "r": fmt_r or fmt_l}


def _limbs(r: _Rig, side, names, chest, pelvis, *, fingers=None, finger_end=False, splits=False, twists=None,
           clavicle=True, toe=True, eye_parent=None, eye=None):
    """Arm and leg of one side. ``names``: part -> name (with the side in it)."""
    def seg(key, parent, a, b, n=1):
        """A bone from joint a to b, split in n numbered segments when n > 1."""
        if n == 1:
            return r.add(names[key], parent, pos(a, side), pos(b, side))
        prev = parent
        for k in range(n):
            if "{" in names[key]:   # "UpperArm.{:02d}.L": every segment numbered, from 01
                nm = names[key].format(k + 1)
            else:                   # Rigify: "upper_arm.L", "upper_arm.L.001"
                nm = names[key] if k == 0 else f"{names[key]}.{k:03d}"
            prev = r.add(nm, prev, pos(_mid(a, b, k / n), side), pos(_mid(a, b, (k + 1) / n), side))
        return prev
    n = 2 if splits else 1
    up = chest
    names = {k: (v.format(1) if "{" in v and not splits else v) for k, v in names.items()}
    if clavicle:
        up = r.add(names["clavicle"], chest, pos("clav", side), pos("shoulder", side))
    def first(key):
        return names[key].format(1) if "{" in names[key] else names[key]
    ua_first = first("upperarm")
    ua = seg("upperarm", up, "shoulder", "elbow", n)
    fa_first = first("forearm")
    fa = seg("forearm", ua, "elbow", "wrist", n)
    hand = r.add(names["hand"], fa, pos("wrist", side), finger_point("middle", 0, side))
    if twists:
        r.add(twists["upperarm"], ua_first, pos(_mid("shoulder", "elbow"), side), pos("elbow", side))
        r.add(twists["forearm"], fa_first, pos(_mid("elbow", "wrist"), side), pos("wrist", side))
    if fingers:
        for f in ("thumb", "index", "middle", "ring", "pinky"):
            if fingers(f, 1) is None:
                continue
            prev = hand
            for i in range(3):
                prev = r.add(fingers(f, i + 1), prev, finger_point(f, i, side), finger_point(f, i + 1, side))
            if finger_end:
                tip = pos(np.add(finger_point(f, 3, None), (0.02, 0, 0)), side)
                r.add(fingers(f, 4), prev, finger_point(f, 3, side), tip)
    th = seg("thigh", pelvis, "hip", "knee", n)
    sh = seg("shin", th, "knee", "ankle", n)
    ft = r.add(names["foot"], sh, pos("ankle", side), pos("ball", side))
    if toe:
        r.add(names["toe"], ft, pos("ball", side), pos("toetip", side))
    if twists and "thigh" in twists:
        r.add(twists["thigh"], first("thigh"), pos(_mid("hip", "knee"), side), pos("knee", side))
    if eye:
        r.add(eye, eye_parent, pos("eye", side), pos(np.add(P["eye"], (0, -0.02, 0)), side))


def _spine(r: _Rig, names, *, root=None, neck2=False):
    parent = r.add(root, None, P["root"], (0, 0.1, 0), deform=False) if root else None
    hips = r.add(names[0], parent, P["pelvis"], P["sp1"])
    s1 = r.add(names[1], hips, P["sp1"], P["sp2"])
    s2 = r.add(names[2], s1, P["sp2"], P["sp3"])
    chest = r.add(names[3], s2, P["sp3"], P["neck"])
    neck = r.add(names[4], chest, P["neck"], P["neck2"] if neck2 else P["head"])
    if neck2:
        neck = r.add(names[4].replace("1", "2").replace("01", "02"), neck, P["neck2"], P["head"])
    head = r.add(names[5], neck, P["head"], P["top"])
    return hips, chest, head


def mixamo(prefix="mixamorig:"):
    r = _Rig()
    hips, chest, head = _spine(r, [prefix + n for n in ("Hips", "Spine", "Spine1", "Spine2", "Neck", "Head")])
    r.add(prefix + "HeadTop_End", head, P["top"], (0, 0, 1.85))
    for s, S in (("l", "Left"), ("r", "Right")):
        names = {k: prefix + S + v for k, v in dict(clavicle="Shoulder", upperarm="Arm", forearm="ForeArm",
                                                     hand="Hand", thigh="UpLeg", shin="Leg", foot="Foot",
                                                     toe="ToeBase").items()}
        _limbs(r, s, names, chest, hips, fingers=lambda f, i, S=S: f"{prefix}{S}Hand{f.capitalize()}{i}",
               finger_end=True, eye=prefix + S + "Eye", eye_parent=head)
    return r.bones


def rigify():
    """A generated Rigify rig: DEF (deforming, split limbs), ORG, MCH and controls."""
    r = _Rig()
    root = r.add("root", None, P["root"], (0, 0.3, 0), deform=False)
    for layer, deform in (("ORG-", False), ("DEF-", True)):
        sp = [layer + n for n in ("spine", "spine.001", "spine.002", "spine.003", "spine.004", "spine.006")]
        hips = r.add(sp[0], root, P["pelvis"], P["sp1"], deform)
        s1 = r.add(sp[1], hips, P["sp1"], P["sp2"], deform)
        s2 = r.add(sp[2], s1, P["sp2"], P["sp3"], deform)
        chest = r.add(sp[3], s2, P["sp3"], P["neck"], deform)
        neck = r.add(sp[4], chest, P["neck"], P["neck2"], deform)
        n2 = r.add(layer + "spine.005", neck, P["neck2"], P["head"], deform)
        head = r.add(sp[5], n2, P["head"], P["top"], deform)
        for s, S in (("l", "L"), ("r", "R")):
            names = {k: f"{layer}{v}.{S}" for k, v in dict(clavicle="shoulder", upperarm="upper_arm",
                                                           forearm="forearm", hand="hand", thigh="thigh",
                                                           shin="shin", foot="foot", toe="toe").items()}
            def fingers(f, i, S=S, layer=layer):
                return f"{layer}{'thumb' if f == 'thumb' else 'f_' + f}.{i:02d}.{S}" if i <= 3 else None
            _limbs(r, s, names, chest, hips, fingers=fingers, splits=layer == "DEF-",
                   eye=f"{layer}eye.{S}", eye_parent=head)
    for b in list(r.bones):
        # Only the DEF layer deforms (the ORG copies and the eyes' ORG bones do not).
        r.bones[r.bones.index(b)] = Bone(b.name, b.parent, b.head, b.tail, b.name.startswith("DEF-"))
    # Controls and mechanism, placed where they would mislead a careless mapper.
    for s, S in (("l", "L"), ("r", "R")):
        r.add(f"hand_ik.{S}", root, pos((0.9, 0.3, 1.0), s), pos((0.9, 0.4, 1.0), s), deform=False)
        r.add(f"upper_arm_fk.{S}", "ORG-spine.003", pos((0.3, 0.2, 1.6), s), pos((0.5, 0.2, 1.6), s), deform=False)
        r.add(f"MCH-forearm_ik.{S}", root, pos((0.5, 0.5, 1.2), s), pos((0.6, 0.5, 1.2), s), deform=False)
        r.add(f"foot_ik.{S}", root, pos((0.3, 0.3, 0.0), s), pos((0.3, 0.1, 0.0), s), deform=False)
        r.add(f"shoulder.{S}", "ORG-spine.003", pos((0.05, 0.1, 1.5), s), pos((0.2, 0.1, 1.5), s), deform=False)
    r.add("torso", root, (0, 0.3, 1.0), (0, 0.5, 1.0), deform=False)
    r.add("head", "torso", (0, 0.3, 1.9), (0, 0.3, 2.1), deform=False)
    r.add("neck", "torso", (0, 0.3, 1.8), (0, 0.3, 1.9), deform=False)
    return r.bones


def unreal():
    r = _Rig()
    hips, chest, head = _spine(r, ["pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head"], root="root")
    for s in ("l", "r"):
        names = {k: f"{v}_{s}" for k, v in dict(clavicle="clavicle", upperarm="upperarm", forearm="lowerarm",
                                                 hand="hand", thigh="thigh", shin="calf", foot="foot",
                                                 toe="ball").items()}
        _limbs(r, s, names, chest, hips, fingers=lambda f, i, s=s: f"{f}_{i:02d}_{s}",
               twists={"upperarm": f"upperarm_twist_01_{s}", "forearm": f"lowerarm_twist_01_{s}",
                       "thigh": f"thigh_twist_01_{s}"})
    r.add("ik_foot_root", "root", P["root"], (0, 0.1, 0), deform=False)
    r.add("ik_hand_root", "root", P["root"], (0, 0.1, 0), deform=False)
    for s in ("l", "r"):
        r.add(f"ik_foot_{s}", "ik_foot_root", pos((0.4, 0.3, 0), s), pos((0.4, 0.4, 0), s), deform=False)
        r.add(f"ik_hand_{s}", "ik_hand_root", pos((1.0, 0.5, 1.5), s), pos((1.0, 0.6, 1.5), s), deform=False)
    return r.bones


def character_creator():
    r = _Rig()
    root = r.add("CC_Base_BoneRoot", None, P["root"], (0, 0.1, 0), deform=False)
    hip = r.add("CC_Base_Hip", root, P["pelvis"], P["sp1"])
    pelvis = r.add("CC_Base_Pelvis", hip, P["pelvis"], (0, 0, 0.85))
    waist = r.add("CC_Base_Waist", hip, P["sp1"], P["sp2"])
    s1 = r.add("CC_Base_Spine01", waist, P["sp2"], P["sp3"])
    chest = r.add("CC_Base_Spine02", s1, P["sp3"], P["neck"])
    n1 = r.add("CC_Base_NeckTwist01", chest, P["neck"], P["neck2"])
    n2 = r.add("CC_Base_NeckTwist02", n1, P["neck2"], P["head"])
    head = r.add("CC_Base_Head", n2, P["head"], P["top"])
    for s, S in (("l", "L"), ("r", "R")):
        names = {k: f"CC_Base_{S}_{v}" for k, v in dict(clavicle="Clavicle", upperarm="Upperarm",
                                                         forearm="Forearm", hand="Hand", thigh="Thigh",
                                                         shin="Calf", foot="Foot", toe="ToeBase").items()}
        fn = {"thumb": "Thumb", "index": "Index", "middle": "Mid", "ring": "Ring", "pinky": "Pinky"}
        _limbs(r, s, names, chest, pelvis, fingers=lambda f, i, S=S, fn=fn: f"CC_Base_{S}_{fn[f]}{i}",
               twists={"upperarm": f"CC_Base_{S}_UpperarmTwist01", "forearm": f"CC_Base_{S}_ForearmTwist01"},
               eye=f"CC_Base_{S}_Eye", eye_parent=head)
    return r.bones


def vrm():
    r = _Rig()
    hips, chest, head = _spine(r, ["J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest",
                                   "J_Bip_C_Neck", "J_Bip_C_Head"])
    for s, S in (("l", "L"), ("r", "R")):
        names = {k: f"J_Bip_{S}_{v}" for k, v in dict(clavicle="Shoulder", upperarm="UpperArm", forearm="LowerArm",
                                                       hand="Hand", thigh="UpperLeg", shin="LowerLeg", foot="Foot",
                                                       toe="ToeBase").items()}
        fn = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Little"}
        _limbs(r, s, names, chest, hips, fingers=lambda f, i, S=S, fn=fn: f"J_Bip_{S}_{fn[f]}{i}",
               eye=f"J_Adj_{S}_FaceEye", eye_parent=head)
    return r.bones


def vrm_humanoid():
    """VRM's humanoid bone names as a VRM importer names the bones ("leftLowerArm", "leftIndexProximal")."""
    r = _Rig()
    hips, chest, head = _spine(r, ["hips", "spine", "chest", "upperChest", "neck", "head"])
    for s, S in (("l", "left"), ("r", "right")):
        names = {k: S + v for k, v in dict(clavicle="Shoulder", upperarm="UpperArm", forearm="LowerArm", hand="Hand",
                                            thigh="UpperLeg", shin="LowerLeg", foot="Foot", toe="Toes").items()}
        seg = {1: "Proximal", 2: "Intermediate", 3: "Distal"}
        def finger(f, i, S=S, seg=seg):
            return f"{S}{'Little' if f == 'pinky' else f.capitalize()}{seg[i]}"
        _limbs(r, s, names, chest, hips, fingers=finger, eye=S + "Eye", eye_parent=head)
    return r.bones


def smpl():
    r = _Rig()
    hips, chest, head = _spine(r, ["Pelvis", "Spine1", "Spine2", "Spine3", "Neck", "Head"])
    for s, S in (("l", "L"), ("r", "R")):
        names = {k: f"{S}_{v}" for k, v in dict(clavicle="Collar", upperarm="Shoulder", forearm="Elbow",
                                                 hand="Wrist", thigh="Hip", shin="Knee", foot="Ankle",
                                                 toe="Foot").items()}
        _limbs(r, s, names, chest, hips)
        r.add(f"{S}_Hand", f"{S}_Wrist", finger_point("middle", 0, s), finger_point("middle", 3, s))
    return r.bones


def smplx():
    r = _Rig()
    hips, chest, head = _spine(r, ["pelvis", "spine1", "spine2", "spine3", "neck", "head"])
    r.add("jaw", head, (0, -0.03, 1.6), (0, -0.08, 1.58))
    for s, S in (("l", "left"), ("r", "right")):
        names = {k: f"{S}_{v}" for k, v in dict(clavicle="collar", upperarm="shoulder", forearm="elbow",
                                                 hand="wrist", thigh="hip", shin="knee", foot="ankle",
                                                 toe="foot").items()}
        _limbs(r, s, names, chest, hips, fingers=lambda f, i, S=S: f"{S}_{f}{i}",
               eye=f"{S}_eye_smplhf", eye_parent=head)
    return r.bones


def bvh_cmu():
    """CMU mocap names as Blender's BVH importer makes them (end sites are tails)."""
    r = _Rig()
    hips = r.add("Hips", None, P["pelvis"], P["sp1"])
    lb = r.add("LowerBack", hips, P["sp1"], P["sp2"])
    sp = r.add("Spine", lb, P["sp2"], P["sp3"])
    chest = r.add("Spine1", sp, P["sp3"], P["neck"])
    neck = r.add("Neck", chest, P["neck"], P["neck2"])
    n1 = r.add("Neck1", neck, P["neck2"], P["head"])
    r.add("Head", n1, P["head"], P["top"])
    for s, S, C in (("l", "Left", "L"), ("r", "Right", "R")):
        hj = r.add(f"{C}HipJoint", hips, P["pelvis"], pos("hip", s))
        names = {k: S + v for k, v in dict(clavicle="Shoulder", upperarm="Arm", forearm="ForeArm", hand="Hand",
                                            thigh="UpLeg", shin="Leg", foot="Foot", toe="ToeBase").items()}
        _limbs(r, s, names, chest, hj)
        fb = r.add(f"{S}FingerBase", f"{S}Hand", finger_point("middle", 0, s), finger_point("middle", 1, s))
        r.add(f"{S}HandIndex1", fb, finger_point("index", 1, s), finger_point("index", 3, s))
        r.add(f"{C}Thumb", f"{S}Hand", finger_point("thumb", 0, s), finger_point("thumb", 3, s))
    return r.bones


def blender_camel():
    r = _Rig()
    hips, chest, head = _spine(r, ["Hips", "Spine", "Spine.001", "Chest", "Neck", "Head"])
    for s, S in (("l", "L"), ("r", "R")):
        names = {k: f"{v}.{S}" for k, v in dict(clavicle="Shoulder", upperarm="UpperArm", forearm="ForeArm",
                                                 hand="Hand", thigh="Thigh", shin="Shin", foot="Foot",
                                                 toe="Toe").items()}
        _limbs(r, s, names, chest, hips, fingers=lambda f, i, S=S: f"{f.capitalize()}.{i:02d}.{S}")
    return r.bones


def biped():
    """3ds Max Biped: "Bip01 L UpperArm", thighs under the spine, Finger0 = thumb .. Finger4 = pinky."""
    r = _Rig()
    root = r.add("Bip01", None, P["root"], (0, 0.1, 0), deform=False)
    hips = r.add("Bip01 Pelvis", root, P["pelvis"], P["sp1"])
    s1 = r.add("Bip01 Spine", hips, P["sp1"], P["sp2"])
    s2 = r.add("Bip01 Spine1", s1, P["sp2"], P["sp3"])
    chest = r.add("Bip01 Spine2", s2, P["sp3"], P["neck"])
    neck = r.add("Bip01 Neck", chest, P["neck"], P["head"])
    head = r.add("Bip01 Head", neck, P["head"], P["top"])
    r.add("Bip01 HeadNub", head, P["top"], (0, 0, 1.85))
    for s, S in (("l", "L"), ("r", "R")):
        names = {k: f"Bip01 {S} {v}" for k, v in dict(clavicle="Clavicle", upperarm="UpperArm", forearm="Forearm",
                                                       hand="Hand", thigh="Thigh", shin="Calf", foot="Foot",
                                                       toe="Toe0").items()}
        order = ("thumb", "index", "middle", "ring", "pinky")
        _limbs(r, s, names, chest, s1,
               fingers=lambda f, i, S=S, order=order: f"Bip01 {S} Finger{order.index(f)}{'' if i == 1 else i - 1}")
    return r.bones


def blender_numbered_splits():
    """Every limb in two numbered segments: "UpperArm.01.L", "UpperArm.02.L"."""
    r = _Rig()
    hips, chest, head = _spine(r, ["Hips", "Spine", "Spine.001", "Chest", "Neck", "Head"])
    for s, S in (("l", "L"), ("r", "R")):
        names = {k: f"{v}.{S}" for k, v in dict(clavicle="Shoulder", hand="Hand", foot="Foot", toe="Toe").items()}
        names.update({k: v + ".{:02d}." + S for k, v in dict(upperarm="UpperArm", forearm="ForeArm", thigh="Thigh",
                                                              shin="Shin").items()})
        _limbs(r, s, names, chest, hips, splits=True)
    return r.bones


CONVENTIONS = {"biped": biped, "vrm_humanoid": vrm_humanoid, "numbered_splits": blender_numbered_splits,
               "mixamo": mixamo, "mixamo1": lambda: mixamo("mixamorig1:"), "bare_mixamo": lambda: mixamo(""),
               "rigify": rigify, "unreal": unreal, "character_creator": character_creator, "vrm": vrm,
               "smpl": smpl, "smplx": smplx, "bvh_cmu": bvh_cmu, "blender": blender_camel}


def scrambled(seed=0, source=mixamo):
    """Every name replaced by noise; non-deforming IK helpers added far out."""
    rnd = random.Random(seed)
    bones = source()
    new = {b.name: f"bone_{rnd.randrange(16**6):06x}" for b in bones}
    out = [Bone(new[b.name], new.get(b.parent), b.head, b.tail, b.deform) for b in bones]
    root = out[0].name
    for s in ("l", "r"):
        out.append(Bone(f"bone_ik{rnd.randrange(999)}", root, pos((0.9, 0.4, 1.9), s), pos((0.9, 0.5, 1.9), s), False))
        out.append(Bone(f"bone_ik{rnd.randrange(999)}x", None, pos((0.5, 0.5, -0.2), s), pos((0.5, 0.6, -0.2), s),
                        False))
    rnd.shuffle(out)
    return out, new


def transformed(bones, matrix):
    """The same rig with every rest point mapped by a 4x4 (scale, axis swap)."""
    m = np.asarray(matrix, float)

    def t(p):
        return tuple(float(v) for v in (m @ np.array([*p, 1.0]))[:3])
    return [Bone(b.name, b.parent, t(b.head), t(b.tail), b.deform) for b in bones]


def build_armature(bones, name="Rig"):
    """A real armature object with these bones (bpy), through the project's one rig builder."""
    import bpy

    from backend.blender.rig import build_armature as build
    deform = {b.name: b.deform for b in bones}
    return build(name, {b.name: (b.head, b.tail, b.parent) for b in bones}, bpy.context.scene.collection,
                 deform=deform.__getitem__)
