"""The dataset's interaction motions (lift, push, sit) and looks, checked on the posed geometry."""
from __future__ import annotations

import os

import bpy  # noqa: F401  (first: mathutils)
import numpy as np
import pytest

from backend.blender.clips import interactions as it
from backend.blender.clips import looks
from backend.blender.clips.random_scene import MOTIONS, build_clip_scene
from backend.blender.demo.retarget import SEGMENTS
from backend.blender import scene_kit as kit
from backend.training.data.motions import SCENE_FPS, MotionError, list_motions
from backend.blender.imports import import_bvh
from blender_addon.scene.rig import PosedRig, map_armature

FRAMES = 3


def _scene(motion, seed=3):
    c = build_clip_scene(np.random.default_rng(seed), FRAMES, 32, 1, motion=motion)
    return c, c["scene"], c["armature"]


def _local(obj, point):
    return obj.matrix_world.inverted() @ point


def _bottom_top(obj):
    zs = [(obj.matrix_world @ v.co).z for v in obj.data.vertices]
    return min(zs), max(zs)


def test_every_motion_is_a_choice_of_the_seeded_rng():
    assert set(it.INTERACTIONS) <= set(MOTIONS)


def test_lift_holds_the_box_between_the_hands_after_the_grasp():
    c, scene, arm = _scene("lift")
    box, stand = bpy.data.objects["Carried"], bpy.data.objects["Stand"]
    assert box in c["props"] and stand not in c["props"], "the carried box is tagged, its stand is furniture"
    scene.frame_set(1)
    assert abs(_bottom_top(box)[0] - _bottom_top(stand)[1]) < 1e-4, "before the grasp the box rests on its stand"
    z0 = box.matrix_world.translation.z
    for f in (2, 3):   # t = 0.5, 1.0: after the grasp
        scene.frame_set(f)
        for hand in it._hands(arm):
            p = _local(box, hand)
            # Palm on a side face: the hand's centre is one hand radius outside the box's half width.
            assert abs(abs(p.x) - (box.dimensions.x / 2 + it.HAND_RADIUS)) < 1e-3
            assert abs(p.y) < 1e-3 and abs(p.z) < 1e-3
    assert box.matrix_world.translation.z > z0 + 0.2, "the box is lifted"


def test_push_slides_a_crate_on_the_floor_with_the_palms_on_its_face():
    c, scene, arm = _scene("push")
    crate = bpy.data.objects["Pushed"]
    assert crate in c["props"]
    where = []
    for f in range(1, FRAMES + 1):
        scene.frame_set(f)
        assert abs(_bottom_top(crate)[0]) < 1e-4, "the crate's base is on the floor"
        for hand in it._hands(arm):
            p = _local(crate, hand)
            # Palm on the near face (the crate is ahead of the character, so the hands are on its +Y side).
            assert abs(p.y - (crate.dimensions.y / 2 + it.HAND_RADIUS)) < 1e-3
            assert abs(p.x) < crate.dimensions.x / 2 and 0 < p.z < crate.dimensions.z
        where.append(crate.matrix_world.translation.to_2d())
    assert (where[-1] - where[0]).length > 0.2, "the crate moved along the floor"


def test_sit_lowers_the_hips_onto_the_seat_and_keeps_the_feet():
    c, scene, arm = _scene("sit")
    seat = bpy.data.objects["Seat"]
    assert seat in c["props"]
    scene.frame_set(1)
    hips0, feet0 = it._joint(arm, "Hips").copy(), it._ankles(arm).copy()
    p = _local(seat, feet0)
    assert abs(p.y) > seat.dimensions.y / 2 + 0.05, "standing in front of the seat, not inside it"
    scene.frame_set(FRAMES)
    hips = it._joint(arm, "Hips")
    assert hips.z < hips0.z - 0.2
    # The thighs rest on the seat: hip joint one (scaled) thigh radius above its top, over its footprint.
    assert abs(hips.z - it.THIGH_RADIUS * arm.scale.z - _bottom_top(seat)[1]) < 1e-3
    q = _local(seat, hips)
    assert abs(q.x) < seat.dimensions.x / 2 and abs(q.y) < seat.dimensions.y / 2
    assert (it._ankles(arm) - feet0).length < 1e-3


@pytest.mark.parametrize("pattern", looks.PATTERNS)
def test_clothing_patterns_are_shader_nodes_between_two_colours(pattern):
    _scene("walk")
    mat = kit.material(f"Cloth_{pattern}", (0.5, 0.5, 0.5))
    before = {n.type for n in mat.node_tree.nodes}
    looks.apply_pattern(mat, pattern, (0.9, 0.1, 0.1), (0.1, 0.1, 0.9), 5.0)
    added = {n.type for n in mat.node_tree.nodes} - before
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    driven = bsdf.inputs["Base Color"].is_linked
    assert (pattern == "solid") == (not driven)
    assert {"solid": set(), "stripes": {"TEX_WAVE", "VALTORGB", "TEX_COORD"},
            "checks": {"TEX_CHECKER", "TEX_COORD"}}[pattern] == added


def test_hair_variants_and_looks_come_from_the_seed():
    seen = set()
    for seed in range(12):
        c, _, arm = _scene("walk", seed)
        names = {o.name for o in c["body"]}
        hair = c["looks"]["hair"]
        seen.add(hair)
        assert ("Hair" in names) == (hair != "bald")
        assert ("HairLong" in names) == (hair == "long") and ("HairBun" in names) == (hair == "bun")
        assert all(o.modifiers["Armature"].object == arm for o in c["body"] if o.name.startswith("Hair"))
        again, _, _ = _scene("walk", seed)
        assert again["looks"] == c["looks"]
    assert len(seen) >= 3


ASSETS = os.path.join(os.path.dirname(__file__), "assets")


def _segments(posed, frame, scene):
    scene.frame_set(frame)
    out = []
    for a, b in SEGMENTS:
        d = posed.world(posed.mapping.joints[b]) - posed.world(posed.mapping.joints[a])
        out.append(d.normalized().z)   # the vertical part survives the retarget's turn about Z
    return np.array(out)


@pytest.mark.parametrize("name", ["cmu_01_01_start.bvh", "boxing_toes_start.bvh"])
def test_a_bvh_clip_takes_the_recorded_window_of_the_file(name):
    listed = list_motions(ASSETS, FRAMES)
    bvh = {"folder": ASSETS, "motions": [m for m in listed if m["file"] == name], "share": 1.0}
    c = build_clip_scene(np.random.default_rng(4), FRAMES, 32, 1, bvh=bvh)
    scene, arm = c["scene"], c["armature"]
    rec = c["bvh"]
    assert c["motion"] == "bvh" and rec["file"] == name and rec["fps"] == SCENE_FPS
    first, last = rec["frames"]
    assert last - first == FRAMES - 1 and 0 <= first and last < bvh["motions"][0]["frames"]
    dst = PosedRig(arm, map_armature(arm))
    got = np.stack([_segments(dst, 1 + k, scene) for k in range(FRAMES)])
    # The same file on its own, BVH frame 0 on scene frame 1: the clip's frame 1 + k is its frame 1 + first + k.
    src = import_bvh(os.path.join(ASSETS, name), scene, fps=SCENE_FPS)
    ref = PosedRig(src, map_armature(src))
    want = np.stack([_segments(ref, 1 + first + k, scene) for k in range(FRAMES)])
    assert np.abs(got - want).max() < 0.05
    other = (first + 8) % (bvh["motions"][0]["frames"] - FRAMES)
    wrong = np.stack([_segments(ref, 1 + other + k, scene) for k in range(FRAMES)])
    assert np.abs(got - wrong).max() > np.abs(got - want).max()


def test_motion_files_are_listed_with_length_and_identity(tmp_path):
    listed = list_motions(ASSETS, FRAMES)
    assert [m["file"] for m in listed] == ["boxing_toes_start.bvh", "cmu_01_01_start.bvh"]
    assert [m["frames"] for m in listed] == [25, 24]   # 101 frames at 100 fps and 121 at 120 fps, seen at 24 fps
    with pytest.raises(MotionError, match="fewer than --frames 30"):
        list_motions(ASSETS, 30)
    with pytest.raises(MotionError, match="holds no .bvh file"):
        list_motions(str(tmp_path), FRAMES)
