"""Points where an estimator sees them, fitted on the demo character's meshes
(real bpy), and what happens when the mesh cannot place them: absent, with one
note in the mapping, never guessed."""
from __future__ import annotations

import bpy
import numpy as np
import pytest

from backend.blender import scene_kit as kit
from backend.blender.clips.looks import apply_hair
from backend.blender.demo.scene import PREFIX, build_character
from blender_addon.core import conventions
from blender_addon.scene import keypoints as kp_mod
from blender_addon.scene.rig import PosedRig, map_armature

FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


def _character(hair: str = "short"):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm = build_character(bpy.context.scene)
    apply_hair(arm, hair)
    r = bpy.context.scene.render
    r.resolution_x = r.resolution_y = 96
    bpy.context.view_layer.update()
    return arm


def _world(arm, m, name):
    p = PosedRig(arm, m).seen_points([name])[0]
    return None if p is None else np.array(p)


def _remove(*names):
    for n in names:
        bpy.data.objects.remove(bpy.data.objects[n])


def test_face_and_toes_sit_on_the_skin_whatever_the_hair():
    short = _character("short")
    m = map_armature(short)
    assert m.notes == []
    assert {m.seen[k].how for k in FACE + conventions.TOE_KEYPOINT_NAMES} == {"surface"}
    pts = {k: _world(short, m, k) for k in FACE + conventions.TOE_KEYPOINT_NAMES}
    # Eyes at the front of the eye meshes; the nose at the nose's tip, in front of them; ears at the
    # sides of the skull (head radius 0.105 m), at about eye height, not on the hair above.
    assert pts["left_eye"][0] > 0.02 and pts["right_eye"][0] < -0.02 and abs(pts["left_eye"][2] - 1.69) < 0.02
    assert pts["nose"][1] < pts["left_eye"][1] - 0.01 and abs(pts["nose"][0]) < 0.01
    for side, sign in (("left", 1), ("right", -1)):
        ear = pts[f"{side}_ear"]
        assert 0.07 < sign * ear[0] < 0.105 and 1.6 < ear[2] < 1.72, ear
    # Toes: the front of the shoes (the ToeBase bone ends at y = -0.20), near the floor.
    for side, x in (("left", 0.10), ("right", -0.10)):
        toe = pts[f"{side}_toe"]
        assert abs(toe[0] - x) < 0.03 and toe[1] < -0.19 and toe[2] < 0.09, toe
    long = _character("long")
    m_long = map_armature(long)
    for k in FACE:
        assert np.allclose(_world(long, m_long, k), pts[k], atol=1e-4), k   # long hair changes no face point


def test_the_neck_is_the_midpoint_of_the_shoulders_in_the_image():
    arm = _character()
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.8, -3.5, 1.3), (1.5, 0, 0.25)
    scene.camera = cam
    bpy.context.view_layer.update()
    kps = kp_mod.project_keypoints(scene, cam, arm, map_armature(arm), 96, 96, None)
    i = conventions.KEYPOINT_INDEX
    assert np.allclose(kps[i["neck"], :2], (kps[i["left_shoulder"], :2] + kps[i["right_shoulder"], :2]) / 2)
    rig = kp_mod.project_rig_joints(scene, cam, arm, map_armature(arm), 96, 96, ["neck"])
    assert rig[0, 1] < kps[i["neck"], 1] - 1   # the rig's neck bone sits higher in the image


@pytest.mark.parametrize("case", ["no head mesh", "hair over the face", "no feet", "no shoulders"])
def test_unplaceable_points_are_absent_with_one_note(case):
    arm = _character()
    scene = bpy.context.scene
    if case == "no head mesh":
        _remove("Head", "Hair", "EyeLeft", "EyeRight", "Nose", "Mouth")
        gone, words = FACE, "no head mesh"
    elif case == "hair over the face":
        fringe = kit.mesh_object("HairFringe", kit.ellipsoid((0, -0.13, 1.62), (0, -0.13, 1.76), 0.09, 0.3, 0.1),
                                 bpy.data.materials["Hair"], bpy.data.collections["Character"])
        fringe.vertex_groups.new(name=PREFIX + "Head").add(list(range(len(fringe.data.vertices))), 1.0, "REPLACE")
        fringe.parent = arm
        fringe.modifiers.new("Armature", "ARMATURE").object = arm
        gone, words = ("nose", "left_eye", "right_eye"), "hair or an accessory covers"
    elif case == "no feet":
        _remove("LeftShoe", "RightShoe")
        gone, words = conventions.TOE_KEYPOINT_NAMES, "no foot mesh"
    else:
        bpy.context.view_layer.objects.active = arm
        bpy.ops.object.mode_set(mode="EDIT")
        for side in ("Left", "Right"):
            for b in ("Shoulder", "Arm", "ForeArm", "Hand"):
                arm.data.edit_bones.remove(arm.data.edit_bones[PREFIX + side + b])
            for b in [b for b in arm.data.edit_bones if b.name.startswith(PREFIX + side + "Hand")]:
                arm.data.edit_bones.remove(b)
        bpy.ops.object.mode_set(mode="OBJECT")
        gone, words = ("neck", "left_shoulder", "right_shoulder"), "the neck (their midpoint) is left absent"
    bpy.context.view_layer.update()
    m = map_armature(arm)
    notes = [n for n in m.notes if words in n]
    assert len(notes) == 1, m.notes
    rows = dict((k, how) for k, _, how in m.rows(conventions.KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES))
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0, -4.0, 1.0), (1.5708, 0, 0)
    bpy.context.view_layer.update()
    kps = kp_mod.frame_keypoints(scene, cam, arm, m, 96, 96, None)
    pts = np.concatenate([kps["keypoints"], kps["toe_keypoints"]])
    names = conventions.KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES
    for k in gone:
        assert pts[names.index(k), 3] == conventions.VIS_ABSENT, k
        assert rows[k] in ("absent", "missing"), (k, rows[k])
    # Everything else a camera sees is still there.
    for k in ("left_hip", "right_hip", "left_knee", "left_ankle"):
        assert pts[names.index(k), 3] == conventions.VIS_VISIBLE, k
