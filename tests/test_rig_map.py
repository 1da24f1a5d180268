"""Automatic bone mapping on bones-only rigs of every naming convention, on
scrambled names (structure), under scale and axis changes (bpy-free)."""
import numpy as np
import pytest

from blender_addon.core import conventions, protocol, rig_map, rig_names
from tests import rig_builder as rb

TOL = 1e-3
HAND_CONVENTIONS = {"biped", "vrm_humanoid", "mixamo", "mixamo1", "bare_mixamo", "rigify", "unreal",
                    "character_creator", "vrm", "smplx", "blender"}


def _check_body(m, expected=rb.EXPECTED, matrix=None, tol=TOL):
    for k, p in expected.items():
        j = m.joints[k]
        assert j is not None, f"{k} missing"
        want = p if matrix is None else (np.asarray(matrix) @ np.array([*p, 1.0]))[:3]
        assert np.linalg.norm(np.subtract(j.point, want)) < tol, (k, j)


@pytest.mark.parametrize("name", sorted(rb.CONVENTIONS))
def test_every_convention_maps_every_body_joint_to_the_real_joint(name):
    m = rig_map.map_rig(rb.CONVENTIONS[name]())
    _check_body(m)
    assert {m.joints[k].how for k in rb.EXPECTED} == {rig_map.CONVENTION}, m.describe()
    assert m.notes == []
    # Face: every face point exists, on the character's correct side, in front.
    for k in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        assert m.joints[k] is not None
    assert m.joints["left_eye"].point[0] > 0 > m.joints["right_eye"].point[0]
    assert m.joints["nose"].point[1] < m.joints["neck"].point[1]      # front is -Y
    assert len(m.face_box) == 8
    if name in HAND_CONVENTIONS:
        for k, p in rb.EXPECTED_HAND.items():
            j = m.joints[k]
            assert j is not None and np.linalg.norm(np.subtract(j.point, p)) < TOL, (name, k, j)
        assert m.joints["left_hand_wrist"] == m.joints["left_wrist"]


def test_twist_bones_and_splits_never_become_joints():
    for name in ("rigify", "unreal", "character_creator"):
        m = rig_map.map_rig(rb.CONVENTIONS[name]())
        used = {m.joints[k].bone for k in rb.EXPECTED if k != "neck"}  # CC names its neck "NeckTwist01"
        assert not any("twist" in b.lower() or b.endswith(".001") for b in used), (name, used)
    m = rig_map.map_rig(rb.blender_numbered_splits())
    assert m.joints["left_elbow"].bone == "ForeArm.01.L" and m.joints["left_knee"].bone == "Shin.01.L"
    m = rig_map.map_rig(rb.rigify())
    assert m.joints["left_elbow"].bone == "DEF-forearm.L" and m.joints["left_shoulder"].bone == "DEF-upper_arm.L"
    assert not any(m.joints[k].bone.startswith(("ORG-", "MCH-")) or "_ik" in m.joints[k].bone for k in rb.EXPECTED)


def test_shoulder_word_is_read_from_where_the_bone_sits():
    # Mixamo's "LeftShoulder" is the clavicle, SMPL's "L_Shoulder" the upper arm.
    assert rig_map.map_rig(rb.mixamo()).joints["left_shoulder"].bone == "mixamorig:LeftArm"
    assert rig_map.map_rig(rb.smpl()).joints["left_shoulder"].bone == "L_Shoulder"
    assert rig_map.map_rig(rb.smpl()).joints["left_wrist"].bone == "L_Wrist"   # not its child L_Hand


@pytest.mark.parametrize("seed, source", [(0, rb.mixamo), (1, rb.unreal), (2, rb.rigify), (3, rb.character_creator)])
def test_scrambled_names_map_by_structure(seed, source):
    bones, renamed = rb.scrambled(seed, source)
    m = rig_map.map_rig(bones)
    assert m.convention == "structure"
    _check_body(m)
    assert {m.joints[k].how for k in rb.EXPECTED} == {rig_map.STRUCTURE}
    helpers = {b.name for b in bones if not b.deform}
    assert not any(m.joints[k].bone in helpers for k in rb.EXPECTED)   # IK helpers ignored
    if source is not rb.rigify:   # Rigify's DEF hands carry named fingers only
        # Fingers by structure: thumb nearest the wrist, then index..pinky.
        for k, p in rb.EXPECTED_HAND.items():
            assert np.linalg.norm(np.subtract(m.joints[k].point, p)) < TOL, k


@pytest.mark.parametrize("matrix", [
    np.diag([100.0, 100.0, 100.0, 1.0]),                                   # centimetres
    np.diag([0.1, 0.1, 0.1, 1.0]),                                         # a 0.1 game rig
    np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]]),  # Y-up armature space (FBX/glTF)
    np.array([[100, 0, 0, 0], [0, 0, 100, 0], [0, -100, 0, 0], [0, 0, 0, 1.0]]),
])
def test_any_scale_and_axes(matrix):
    scale = abs(np.linalg.det(matrix[:3, :3])) ** (1 / 3)
    for bones in (rb.mixamo(), rb.scrambled(5)[0]):
        m = rig_map.map_rig(rb.transformed(bones, matrix))
        _check_body(m, matrix=matrix, tol=TOL * scale)
        assert m.notes == []
        # Derived nose: in front of and above the neck, in the rig's own frame.
        up = matrix[:3, :3] @ np.array([0, 0, 1.0])
        fwd = matrix[:3, :3] @ np.array([0, -1.0, 0])
        d = np.subtract(m.joints["nose"].point, m.joints["neck"].point)
        assert d @ up > 0.05 * scale**2 and d @ fwd > 0.03 * scale**2


def test_user_fix_wins_and_is_marked():
    m = rig_map.map_rig(rb.mixamo(), {"left_elbow": ["mixamorig:LeftArm", "tail"],
                                      "left_hand_index_tip": "mixamorig:LeftHandIndex3"})
    assert m.joints["left_elbow"].how == rig_map.USER
    assert m.joints["left_hand_index_tip"].bone == "mixamorig:LeftHandIndex3"
    rows = dict((k, (b, h)) for k, b, h in m.rows())
    assert rows["left_elbow"] == ("mixamorig:LeftArm", "user")
    assert rows["neck"] == ("mixamorig:Neck", "between the shoulders")
    text = m.describe()
    assert "Mixamo" in text and "left_elbow" in text and "user" in text


def test_name_parsing_across_conventions():
    cases = {
        "mixamorig:LeftForeArm": ("forearm", "l"), "DEF-forearm.L.001": ("forearm", "l"),
        "lowerarm_l": ("forearm", "l"), "CC_Base_R_Forearm": ("forearm", "r"), "J_Bip_L_LowerArm": ("forearm", "l"),
        "L_Elbow": ("forearm", "l"), "right_elbow": ("forearm", "r"), "B_ForeArm_Left": ("forearm", "l"),
        "LeftUpLeg": ("thigh", "l"), "L_Hip": ("thigh", "l"), "B_Hip_Right": ("thigh", "r"), "pelvis": ("hips", None),
        "Bip01 L UpperArm": ("upperarm", "l"), "calf_r": ("shin", "r"), "leftLowerLeg": ("shin", "l"),
        "CC_Base_NeckTwist01": ("neck", None), "spine.004": ("neck", None), "Bip01 L Calf": ("shin", "l"),
    }
    for name, (role, side) in cases.items():
        info = rig_names.classify(name)
        assert (info.role, info.side) == (role, side), (name, info)
    assert rig_names.classify("DEF-upper_arm.L.001").split == 1
    assert rig_names.classify("upperarm_twist_01_l").twist
    for helper in ("hand_ik.L", "MCH-forearm_ik.L", "ik_hand_l", "upper_arm_fk.L", "thigh_tweak.L"):
        assert rig_names.classify(helper).rejected, helper
    info = rig_names.classify("mixamorig:LeftHandIndex2")
    assert (info.role, info.finger, info.side, info.split) == ("finger", "index", "l", 2)
    assert rig_names.classify("J_Bip_R_Little1").finger == "pinky"
    # Rigify of 2016 (the Red Eclipse player): the finger's own name follows the word "finger".
    assert rig_names.classify("DEF-finger_index.01.L.02").finger == "index"
    assert rig_names.classify("Finger2").finger == "finger"


def test_protocol_layouts_for_hands_and_face_box():
    assert conventions.NUM_HAND_KEYPOINTS == 42 and conventions.HAND_KEYPOINT_NAMES[0] == "left_hand_wrist"
    assert conventions.HAND_KEYPOINT_NAMES[21] == "right_hand_wrist"
    assert conventions.HAND_KEYPOINT_NAMES[8] == "left_hand_index_tip"
    assert protocol.FRAME_INPUTS["hand_keypoints"].concrete_shape(64, 64) == (42, 4)
    assert protocol.FRAME_INPUTS["face_box"].concrete_shape(64, 64) == (5,)
    assert protocol.FRAME_INPUTS["toe_keypoints"].concrete_shape(64, 64) == (2, 4)
    # Old clients that send neither still pass the frame check.
    protocol.check_frame_inputs({"keypoints": np.zeros((18, 4), np.float32)}, height=64, width=64)


@pytest.mark.parametrize("name", sorted(rb.CONVENTIONS))
def test_toes_sit_at_the_front_of_each_foot(name):
    m = rig_map.map_rig(rb.CONVENTIONS[name]())
    for k, p in rb.EXPECTED_TOE.items():
        j = m.joints[k]
        assert j is not None, (name, k)
        # The toe tip, or (SMPL, whose toe bone ends the chain) at least the ball of the foot.
        ball = rb.pos("ball", k[0])
        assert min(np.linalg.norm(np.subtract(j.point, p)), np.linalg.norm(np.subtract(j.point, ball))) < TOL, (k, j)


def test_names_for_some_joints_structure_for_the_rest():
    # A Mixamo rig whose legs were renamed to noise: arms by name, legs by structure.
    leg_words = ("UpLeg", "Leg", "Foot", "ToeBase")
    rename = {b.name: f"zz{i}" for i, b in enumerate(rb.mixamo()) if b.name.split(":")[-1][4:] in leg_words
              or b.name.split(":")[-1][5:] in leg_words}
    bones = [rig_map.Bone(rename.get(b.name, b.name), rename.get(b.parent, b.parent), b.head, b.tail, b.deform)
             for b in rb.mixamo()]
    m = rig_map.map_rig(bones)
    _check_body(m)
    assert m.joints["left_elbow"].how == rig_map.CONVENTION and m.joints["left_knee"].how == rig_map.STRUCTURE
    assert m.convention == "Mixamo + structure"


def test_swapped_side_names_are_noted_not_silently_trusted():
    assert rig_map.map_rig(rb.mixamo()).notes == []
    bones = [rig_map.Bone(b.name.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right"),
                          b.parent and b.parent.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right"),
                          b.head, b.tail, b.deform) for b in rb.mixamo()]
    m = rig_map.map_rig(bones)
    assert m.notes and "named left but sits on the body's right" in m.notes[0]
    assert "note:" in m.describe()
