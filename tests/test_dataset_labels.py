"""The dataset's labels against the geometry (ray casting), as tests/test_passes.py checks the add-on's passes."""
from __future__ import annotations

import os

import bpy  # noqa: F401  (first: mathutils)
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view

from backend.blender.clips.random_scene import build_clip_scene
from backend.blender.clips.render_clip import render_clip
from backend.training.data import layout
from backend.training.data.motions import list_motions
from blender_addon.core import conventions
from blender_addon.scene import keypoints as kp_mod
from blender_addon.scene.rig import PosedRig
from tests.blender_scene import raycast_silhouette

SIZE, FRAMES = 64, 2


ASSETS = os.path.join(os.path.dirname(__file__), "assets")


# Seeds whose clip 0 draws push (a moving tagged crate), sit and lift (a carried box); and a retargeted BVH.
@pytest.mark.parametrize("SEED,motion", [(5, "push"), (0, "sit"), (12, "lift"), (5, "bvh")])
def test_saved_labels_match_ray_casting(tmp_path, SEED, motion):
    root = str(tmp_path)
    bvh = {"folder": ASSETS, "motions": list_motions(ASSETS, FRAMES), "share": 1.0} if motion == "bvh" else None
    render_clip(root, 0, seed=SEED, frames=FRAMES, size=SIZE, samples=1, bvh=bvh)
    clip = layout.load_clip(root, 0)
    # Same seed, same scene: rebuild it and cast rays at the very geometry that was rendered.
    c = build_clip_scene(np.random.default_rng(layout.clip_seed(SEED, 0)), FRAMES, SIZE, 1, bvh=bvh)
    scene = c["scene"]
    assert clip["meta"]["motion"] == c["motion"] == motion
    assert clip["meta"]["objects"] == [o.name for o in c["props"]]
    for i in range(FRAMES):
        scene.frame_set(1 + i)
        truth, depth = raycast_silhouette(scene, c["body"], SIZE, SIZE)
        mask = clip["character_mask"][i] == 255
        assert truth.sum() > 30, "the character should be in view"
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou > 0.95, iou
        both = mask & truth
        assert np.abs(clip["character_depth"][i][both] - depth[both]).max() < 0.01
        # Object labels are props seen in the environment render: always on a prop's geometry.
        for k, prop in enumerate(c["props"], start=1):
            labelled = clip["object_labels"][i] == k
            if labelled.sum() >= 4:
                on_prop, _ = raycast_silhouette(scene, [prop], SIZE, SIZE)
                assert (labelled & on_prop).sum() / labelled.sum() > 0.9
        # Keypoints: the armature's joints through world_to_camera_view, visibility from the scene depth.
        kp = clip["keypoints"][i]
        posed = PosedRig(c["armature"], kp_mod.resolve_for(c["armature"]))
        pos = dict(zip(conventions.KEYPOINT_NAMES, posed.points(conventions.KEYPOINT_NAMES)))
        for k, name in enumerate(conventions.KEYPOINT_NAMES):
            if pos.get(name) is None or kp[k, 3] == conventions.VIS_ABSENT:
                continue
            v = world_to_camera_view(scene, scene.camera, pos[name])
            assert abs(kp[k, 0] - v.x * SIZE) < 1e-3 and abs(kp[k, 1] - (1 - v.y) * SIZE) < 1e-3
            margin = kp_mod.OCCLUSION_MARGIN_M + kp_mod.OCCLUSION_MARGIN_REL * kp[k, 2]
            hidden = clip["scene_depth"][i][int(kp[k, 1]), int(kp[k, 0])] < kp[k, 2] - margin
            assert (kp[k, 3] == conventions.VIS_OCCLUDED) == hidden, name
    assert clip["gt"].shape == (FRAMES, SIZE, SIZE, 3) and clip["environment"].dtype == np.uint8
    # Outside the character (and its shadow's reach is small), ground truth and environment agree closely.
    far = ~np.any(clip["character_mask"] > 0, axis=0)
    assert np.abs(clip["gt"].astype(int) - clip["environment"].astype(int))[:, far].mean() < 12
