"""``inhabit export``: write exactly what would be sent for a shot, without a server.

One ``frame_NNNNN.npz`` per frame (the FRAME_INPUTS arrays), ``reference.npz``
(the SUBMIT buffers) and ``job.json`` (the SUBMIT header plus the scene frame
numbers) -- for debugging, bug reports and datasets.
"""
from __future__ import annotations

import json
import os
import sys
import time


def add_parser(subparsers):
    from backend.blender.shot_args import add_shot_arguments
    p = subparsers.add_parser("export", help="write a shot's per-frame conditioning (.npz) and job header (JSON)",
                              description=__doc__)
    add_shot_arguments(p)
    return p


def run(args) -> int:
    from blender_addon.core import conventions, protocol
    from backend.cli.blender_env import use_blender_caches
    use_blender_caches()   # before bpy loads
    from backend.blender.shot_args import open_blend, settings_from_args
    from blender_addon.core.settings import SetupError
    try:
        scene = open_blend(args.blend, args.scene)
        settings = settings_from_args(args, scene)
        import dataclasses

        import numpy as np

        from blender_addon.scene.export import ShotExporter
        from blender_addon.shot import resolve_shot
        shot = resolve_shot(scene, settings)
        os.makedirs(settings.output_dir, exist_ok=True)
        # No server to fill defaults: the params as given, with the shot's seed.
        shot = dataclasses.replace(shot, params={"seed": settings.seed, **settings.params})
        exporter = ShotExporter(shot)
    except SetupError as exc:
        print(f"inhabit export: {exc.message}", file=sys.stderr)
        return 2
    reference, reference_kp = shot.reference, shot.reference_keypoints
    spec = exporter.job_spec()
    header = spec.to_header()
    header["scene_frames"] = [settings.frame_start, settings.frame_end]
    header["keypoint_names"] = list(conventions.KEYPOINT_NAMES)
    header["blend"] = os.path.abspath(args.blend)
    header["hand_keypoint_names"] = list(conventions.HAND_KEYPOINT_NAMES)
    header["keypoint_mapping"] = exporter.mapping.to_json()
    header["armature"] = exporter.armature.name
    header["body"] = [o.name for o in exporter.body_objects]
    print(f"inhabit export: armature {exporter.armature.name!r}, body {len(exporter.body_objects)} object(s), "
          + exporter.mapping.describe(), file=sys.stderr)
    refs = {protocol.REFERENCE: reference}
    if reference_kp is not None:
        refs[protocol.REFERENCE_KEYPOINTS] = reference_kp
    np.savez(os.path.join(settings.output_dir, "reference.npz"), **refs)
    t0 = time.monotonic()
    with exporter:
        for i in range(settings.frame_count):
            arrays = exporter.export_frame(i)
            np.savez(os.path.join(settings.output_dir, f"frame_{i:05d}.npz"), **arrays)
            print(f"inhabit export: frame {i + 1}/{settings.frame_count} "
                  f"(scene frame {exporter.scene_frame(i)})", file=sys.stderr)
    with open(os.path.join(settings.output_dir, "job.json"), "w") as fh:
        json.dump(header, fh, indent=2)
    print(f"inhabit export: {settings.frame_count} frames in {time.monotonic() - t0:.1f}s -> {settings.output_dir} "
          f"({exporter.stats_text()})", file=sys.stderr)
    return 0
