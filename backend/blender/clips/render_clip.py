"""Render one random clip with the add-on's own exporter (bpy).

Per frame the add-on's ``ShotExporter`` -- the one a user's shot goes
through -- gives every frame input the shot would send: environment, scene
depth, object labels, the character's exact silhouette and depth, and the
keypoint inputs (body, hands, toes, face box), checked against the
protocol. The demo's ``render_ground_truth`` renders the frames with the
character, and ``render_reference`` the character alone in its rest pose at
the origin, seen from the front on a transparent background: another pose
and view than the clip's frames.
"""
from __future__ import annotations

import os
import tempfile

import cv2
import numpy as np

from backend.training.data import layout

CLIP_OBJECTS = "ClipObjects"   # the collection the exporter labels


def render_clip(root: str, index: int, *, seed: int, frames: int, size: int, samples: int,
                bvh: dict | None = None) -> str:
    import bpy

    from blender_addon.core.settings import ShotSettings
    from blender_addon.scene.export import ShotExporter
    from blender_addon.shot import scene_shot

    from ..demo.reference_render import render_ground_truth, render_reference
    from ..demo.scene import BODY_COLLECTION
    from .random_scene import build_clip_scene

    rng = np.random.default_rng(layout.clip_seed(seed, index))
    c = build_clip_scene(rng, frames, size, samples, bvh=bvh)
    scene, arm = c["scene"], c["armature"]
    # The props the clip labels, as one collection (not linked to the scene: it changes no render).
    tagged = bpy.data.collections.new(CLIP_OBJECTS)
    for obj in c["props"]:
        tagged.objects.link(obj)
    settings = ShotSettings(armature=arm.name, reference_path="", frame_start=1, frame_end=frames, width=size,
                            height=size, output_dir="", samples=samples, denoise=False, body=BODY_COLLECTION,
                            objects_collection=CLIP_OBJECTS)
    with tempfile.TemporaryDirectory(prefix="inhabit-clip-") as work:
        per: dict[str, list] = {k: [] for k in layout.ARRAYS}
        # The add-on's exporter itself: every frame input a user's shot sends, checked the same way.
        with ShotExporter(scene_shot(scene, settings), workdir=work) as exporter:
            if exporter.object_names != [o.name for o in c["props"]]:
                raise RuntimeError("the clip's labelled objects and the exporter's differ")
            for i in range(frames):
                a = exporter.export_frame(i)
                for k in layout.ARRAYS:
                    if k != "gt":
                        per[k].append(a[k])
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
