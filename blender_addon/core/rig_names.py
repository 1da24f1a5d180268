"""What a bone's name says about it, across rig naming conventions (bpy-free).

Names are split into lower-case tokens (separators and CamelCase), so the
same table reads ``mixamorig:LeftForeArm``, ``DEF-forearm.L.001``,
``lowerarm_l``, ``CC_Base_L_Forearm``, ``J_Bip_L_LowerArm``, ``L_Elbow``,
``left_elbow`` and ``B_ForeArm_Left``. The role says which body part the
bone is; which *joint* a keypoint sits on is decided in ``rig_map`` from the
roles plus the hierarchy (e.g. the shoulder is where the forearm's parent
chain starts, whatever that bone is called).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Role of a bone from its core (the tokens left once side, numbers and noise
# are removed, joined). "hip" is the hips without a side, the thigh with one.
ROLES = {
    "hips": "hips", "pelvis": "hips", "hip": "hips",
    "spine": "spine", "chest": "spine", "upperchest": "spine", "lowerback": "spine", "waist": "spine",
    "neck": "neck", "necktwist": "neck",
    "head": "head",
    "clavicle": "clavicle", "collar": "clavicle", "collarbone": "clavicle", "shoulder": "shoulder",
    "arm": "upperarm", "upperarm": "upperarm",
    "forearm": "forearm", "lowerarm": "forearm", "elbow": "forearm",
    "hand": "hand", "wrist": "hand",
    "upleg": "thigh", "thigh": "thigh", "upperleg": "thigh",
    "leg": "shin", "shin": "shin", "calf": "shin", "lowerleg": "shin", "knee": "shin",
    "foot": "foot", "ankle": "foot",
    "toe": "toe", "toes": "toe", "ball": "toe",
    "eye": "eye", "faceeye": "eye", "nose": "nose", "ear": "ear", "jaw": "jaw",
}
SIDED_ROLE = {"hips": "thigh"}  # "L_Hip" / "left_hip" / "B_Hip_Left" is the thigh
FINGERS = {"thumb": "thumb", "index": "index", "pointer": "index", "middle": "middle", "mid": "middle",
           "ring": "ring", "pinky": "pinky", "pinkie": "pinky", "little": "pinky", "finger": "finger"}
# Tokens that carry no meaning here (prefixes of the conventions, layer names).
NOISE = {"mixamorig", "def", "org", "b", "cc", "base", "j", "bip", "bone", "jnt", "c", "adj", "f", "smplhf",
         "sk", "bn"}
# Tokens that mark a bone that is not a joint of the body: rig controls,
# mechanism and IK helpers (Rigify MCH/fk/ik/tweak, Unreal ik_*), widgets.
REJECT = {"mch", "ik", "fk", "tweak", "pole", "target", "ctrl", "ctl", "control", "vis", "wgt", "helper",
          "parent", "socket", "prop", "weapon", "corrective", "correctiveroot"}
TWIST = {"twist", "roll", "share"}   # split/twist segments of a limb, never the joint itself
END = {"end", "nub", "tip", "top", "site"}
METACARPAL = {"metacarpal", "palm", "meta", "carpal"}
# Blender's human metarig numbers its spine; Rigify keeps the numbers on ORG/DEF.
METARIG_SPINE = {"spine": "hips", "spine.004": "neck", "spine.006": "head"}

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


@dataclass(frozen=True)
class NameInfo:
    role: str | None         # see ROLES, or "finger"
    side: str | None         # "l", "r" or None
    finger: str | None = None
    split: int = 0           # numbered split (.001, _01): 0 for the first segment
    twist: bool = False
    end: bool = False        # an end marker (HeadTop_End, *_Nub, BVH end sites)
    metacarpal: bool = False
    rejected: bool = False
    layer: str = ""          # "def", "org", "" (Rigify layers)


def tokens(name: str) -> list[str]:
    """'mixamorig:LeftHandThumb1' -> ['left', 'hand', 'thumb', '1']."""
    name = name.rsplit(":", 1)[-1]
    out: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        out.extend(t.lower() for t in _CAMEL.findall(part))
    return out


def classify(name: str) -> NameInfo:
    bare = name.rsplit(":", 1)[-1]
    layer = ""
    for prefix in ("DEF-", "ORG-", "MCH-"):
        if bare.startswith(prefix):
            layer = prefix[:3].lower()
            bare = bare[len(prefix):]
    if layer == "mch":
        return NameInfo(None, None, rejected=True, layer=layer)
    if bare in METARIG_SPINE:
        return NameInfo(METARIG_SPINE[bare], None, layer=layer)
    toks = tokens(bare)
    side = None
    core: list[str] = []
    numbers: list[int] = []
    flags: dict[str, bool] = dict(twist=False, end=False, metacarpal=False, rejected=False)
    finger = None
    for t in toks:
        if side is None and t in ("l", "left"):
            side = "l"
        elif side is None and t in ("r", "right"):
            side = "r"
        elif t.isdigit():
            if core or finger:  # "Bip01 L UpperArm": a number before the part is a prefix, not a split
                numbers.append(int(t))
        elif t in NOISE:
            continue
        elif t in REJECT:
            flags["rejected"] = True
        elif t in TWIST:
            flags["twist"] = True
            core.append(t)
        elif t in END:
            flags["end"] = True
        elif t in METACARPAL:
            flags["metacarpal"] = True
        elif t in FINGERS and finger in (None, "finger"):
            # The named finger wins over the word "finger" ("finger_index.01.L": the index).
            finger = FINGERS[t]
        else:
            core.append(t)
    split = numbers[-1] if numbers else 0
    if finger is not None:
        # "LeftHandIndex1", "f_index.01.L", "index_01_l": a finger whatever else is named
        return NameInfo("finger", side, finger=finger, split=split, layer=layer, **flags)
    joined = "".join(core)
    role = ROLES.get(joined)
    if role is None and flags["twist"]:
        role = {"necktwist": "neck"}.get(joined)
        if role is None:
            base = "".join(t for t in core if t not in TWIST)
            role = ROLES.get(base)  # a twist segment of a known part: kept, flagged
    if role is not None and side is not None:
        role = SIDED_ROLE.get(role, role)
    if flags["end"] and role is not None:
        # "HeadTop_End" marks the top of the head, "LeftToe_End" the toe tip: not the joints
        role += "_end"
    if role == "neck":
        flags["twist"] = False  # Character Creator's neck bones are "NeckTwist01/02"
    return NameInfo(role, side, split=split, layer=layer, **flags)  # type: ignore[arg-type]


def convention(names) -> str:
    """A readable guess of the naming family, for the panel and ``inhabit export``."""
    names = list(names)
    joined = " ".join(names)
    checks = (
        ("Mixamo", lambda: "mixamorig" in joined),
        ("Rigify", lambda: any(n.startswith(("DEF-", "ORG-")) for n in names)),
        ("Blender metarig", lambda: "spine.004" in names),
        ("Character Creator", lambda: "CC_Base_" in joined),
        ("VRM", lambda: "J_Bip_" in joined),
        ("VRM humanoid", lambda: "leftUpperArm" in names or "leftLowerArm" in names),
        ("Unreal", lambda: any(n.lower() in ("upperarm_l", "lowerarm_l", "calf_l") for n in names)),
        ("SMPL", lambda: any(n in ("L_Hip", "left_hip", "L_Elbow", "left_elbow") for n in names)),
        ("BVH/CMU", lambda: any(n in ("LHipJoint", "LeftUpLeg") for n in names) and "LHipJoint" in names),
        ("Mixamo/BVH", lambda: "LeftUpLeg" in names),
        ("3ds Max Biped", lambda: any(n.startswith("Bip01 ") for n in names)),
        ("joint names (LeftElbow/LeftKnee)", lambda: any(n in ("LeftElbow", "LeftKnee", "LeftCollar") for n in names)),
        ("B_ prefixed (B_ForeArm_Left)", lambda: sum(n.startswith("B_") for n in names) > len(names) / 2),
        ("Blender .L/.R", lambda: any(n.endswith((".L", ".R")) for n in names)),
    )
    for label, test in checks:
        if test():
            return label
    return "named bones"
