"""Render one random clip with the add-on's own pass code (bpy).

Per frame the add-on's ``PassRenderer`` gives the environment, scene depth,
object labels and the character's exact silhouette and depth -- the very
arrays a user's shot sends to the server -- and ``scene/keypoints.py``
projects the keypoints with visibility. The demo's ``render_ground_truth``
renders the frames with the character, and ``render_reference`` the
character alone in its rest pose at the origin, seen from the front on a
transparent background: another pose and view than the clip's frames.
"""
from __future__ import annotations

import os
import tempfile

import cv2
import numpy as np

from backend.training.data import layout


def render_clip(root: str, index: int, *, seed: int, frames: int, size: int, samples: int,
                bvh: dict | None = None) -> str:
    from blender_addon.scene import keypoints as kp_mod
    from blender_addon.scene.passes import PassRenderer

    from ..demo.reference_render import render_ground_truth, render_reference
    from .random_scene import build_clip_scene

    rng = np.random.default_rng(layout.clip_seed(seed, index))
    c = build_clip_scene(rng, frames, size, samples, bvh=bvh)
    scene, arm, cam = c["scene"], c["armature"], c["camera"]
    mapping = kp_mod.resolve_for(arm, None)
    with tempfile.TemporaryDirectory(prefix="inhabit-clip-") as work:
        per: dict[str, list] = {k: [] for k in layout.ARRAYS}
        renderer = PassRenderer(scene, body_objects=c["body"], labelled_objects=c["props"], width=size,
                                height=size, samples=samples, workdir=work)
        try:
            for f in range(1, frames + 1):
                a = renderer.render_frame(f)
                a["keypoints"] = kp_mod.project_keypoints(scene, cam, arm, mapping, size, size, a["scene_depth"])
                for k in layout.ARRAYS:
                    if k != "gt":
                        per[k].append(a[k])
        finally:
            renderer.close()
        gt_paths = render_ground_truth(scene, list(range(1, frames + 1)), os.path.join(work, "gt"))
        per["gt"] = [cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in gt_paths]
        ref_png, _, ref_kp = render_reference(scene, arm, work, size)
        # Re-encode through cv2 so the bytes depend only on the pixels, not on Blender's PNG writer.
        ref = cv2.imread(ref_png, cv2.IMREAD_UNCHANGED)
        ok, png = cv2.imencode(".png", ref)
        if not ok:
            raise RuntimeError("cannot encode the reference image")
    arrays = {k: np.stack(v) for k, v in per.items()}
    meta = {"clip": index, "seed": layout.clip_seed(seed, index), "frames": frames, "size": size,
            "samples": samples, "objects": [o.name for o in c["props"]], "motion": c["motion"],
            "camera_moving": c["camera_moving"], "looks": c["looks"], "bvh": c["bvh"],
            "generator_version": layout.GENERATOR_VERSION}
    return layout.commit_clip(root, index, arrays, meta,
                              {"reference.png": png.tobytes(),
                               "reference_keypoints.npy": np.asarray(ref_kp, np.float32)})
