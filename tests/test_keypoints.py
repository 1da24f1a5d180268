"""2D keypoints projected from a real armature, with depth-tested visibility."""
import pytest

import bpy  # noqa: E402  (a required test dependency: missing bpy must fail, not skip)

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402

from blender_addon.core import conventions  # noqa: E402
from blender_addon.core.settings import SetupError, ShotSettings  # noqa: E402
from blender_addon.scene import keypoints as kp_mod  # noqa: E402
from blender_addon.scene.export import ShotExporter, check_scene  # noqa: E402
from blender_addon.shot import scene_shot  # noqa: E402
from tests.blender_scene import build_scene  # noqa: E402

SIZE = 64
NAMES = conventions.KEYPOINT_NAMES
BONE_OF = {"neck": "Neck", "right_shoulder": "RightArm", "right_elbow": "RightForeArm", "right_wrist": "RightHand",
           "left_shoulder": "LeftArm", "left_elbow": "LeftForeArm", "left_wrist": "LeftHand",
           "right_hip": "RightUpLeg", "right_knee": "RightLeg", "right_ankle": "RightFoot",
           "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", "left_ankle": "LeftFoot"}


def _settings(**kw):
    base = dict(armature="Rig", reference_path="", frame_start=1, frame_end=3, width=SIZE, height=SIZE,
                output_dir="/tmp", samples=1)
    base.update(kw)
    return ShotSettings(**base)


@pytest.fixture(scope="module")
def exported():
    scene = build_scene(size=SIZE, frames=3)
    with ShotExporter(scene_shot(scene, _settings())) as ex:
        frames = [ex.export_frame(i) for i in range(3)]
    return scene, frames


@pytest.mark.parametrize("index", [0, 1, 2])
def test_keypoints_equal_world_to_camera_view(exported, index):
    scene, frames = exported
    scene.frame_set(1 + index)
    arm = bpy.data.objects["Rig"]
    kps = frames[index]["keypoints"]
    for name, bone in BONE_OF.items():
        c = world_to_camera_view(scene, scene.camera, arm.matrix_world @ arm.pose.bones["mixamorig:" + bone].head)
        # world_to_camera_view uses the scene's aspect; resolution here is square like the job's.
        x, y = c.x * SIZE, (1 - c.y) * SIZE
        k = NAMES.index(name)
        assert abs(kps[k, 0] - x) < 0.5 and abs(kps[k, 1] - y) < 0.5, name
        assert abs(kps[k, 2] - c.z) < 1e-4


def test_occluded_joints_are_flagged(exported):
    _, frames = exported
    for arrays in frames:
        kps = arrays["keypoints"]
        vis = dict(zip(NAMES, kps[:, 3]))
        for name in ("right_knee", "left_knee", "right_ankle", "left_ankle"):  # behind the table
            assert vis[name] == conventions.VIS_OCCLUDED, name
        for name in ("neck", "right_shoulder", "left_shoulder", "nose", "left_eye"):
            assert vis[name] == conventions.VIS_VISIBLE, name


def test_face_points_are_derived_on_the_head(exported):
    _, frames = exported
    kps = dict(zip(NAMES, frames[0]["keypoints"]))
    assert kps["nose"][1] < kps["neck"][1]                       # above the neck (image y grows down)
    assert kps["left_eye"][0] > kps["right_eye"][0]             # character faces the camera
    assert kps["nose"][2] < kps["neck"][2]                       # nose nearer the camera than the neck


def test_offscreen_joints_are_absent():
    scene = build_scene(size=SIZE, frames=1)
    arm = bpy.data.objects["Rig"]
    arm.animation_data_clear()
    arm.location = (30, 0, 0)
    scene.frame_set(1)
    mapping = kp_mod.resolve_for(arm)
    kps = kp_mod.project_keypoints(scene, scene.camera, arm, mapping, SIZE, SIZE, None)
    assert (kps[:, 3] == conventions.VIS_ABSENT).all()


def test_rigify_names_then_meaningless_names_then_too_few_bones():
    scene = build_scene(size=SIZE, frames=1, prefix="")
    arm = bpy.data.objects["Rig"]
    scene.frame_set(1)
    before = kp_mod.project_keypoints(scene, scene.camera, arm, kp_mod.resolve_for(arm), SIZE, SIZE, None)
    rename = {"LeftArm": "DEF-upper_arm.L", "LeftForeArm": "DEF-forearm.L", "LeftHand": "DEF-hand.L",
              "RightArm": "DEF-upper_arm.R", "Neck": "DEF-spine.004", "Head": "DEF-spine.006"}
    for old, new in rename.items():
        arm.data.bones[old].name = new
    mapping = kp_mod.resolve_for(arm)
    assert mapping.joints["left_elbow"].bone == "DEF-forearm.L"
    assert mapping.joints["neck"].bone == "DEF-spine.004"
    for b in arm.data.bones:
        b.name = f"Bone{b.name[:3]}_{id(b) % 1000}"
    # Meaningless names: the structure finds the same joints at the same pixels.
    mapping = kp_mod.resolve_for(arm)
    assert {mapping.joints[k].how for k in BONE_OF} == {"structure"}
    after = kp_mod.project_keypoints(scene, scene.camera, arm, mapping, SIZE, SIZE, None)
    body = [NAMES.index(k) for k in BONE_OF]
    assert abs(after[body] - before[body]).max() < 1e-3
    # Three bones are no body, and the armature drives nothing: one sentence.
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for eb in list(arm.data.edit_bones)[3:]:
        arm.data.edit_bones.remove(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(SetupError, match="drives no mesh and its 3 bones do not make a body"):
        check_scene(scene, _settings())
