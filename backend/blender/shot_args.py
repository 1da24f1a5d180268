"""Command-line options shared by ``inhabit export`` and ``inhabit render``.

Kept here, not in the commands, so both build ShotSettings the same way and
the commands stay cheap to import (bpy is imported only when they run).
"""
from __future__ import annotations

import argparse
import json
import os
import re

from blender_addon.core import protocol
from blender_addon.core.settings import SetupError, ShotSettings


def frame_range(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(-?\d+)\s*(?:[-:]\s*(-?\d+)\s*)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--frames must look like 1-24 (or a single frame), got {text!r}")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    return a, b


def resolution(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--resolution must look like 512x512, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param must look like name=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)  # numbers, true/false, quoted strings
    except ValueError:
        value = raw
    return key.strip(), value


def add_shot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("blend", help="the .blend file holding the shot")
    p.add_argument("--scene", help="scene name (default: the file's active scene)")
    p.add_argument("--armature", help="armature object that drives the character (default: the scene's one "
                                      "character armature)")
    p.add_argument("--body", help="mesh or collection standing for the character (default: the meshes the "
                                  "armature drives, else a proxy of capsules along the bones)")
    p.add_argument("--objects", help="collection of objects the character interacts with")
    p.add_argument("--reference", required=True, help="reference image of the character")
    p.add_argument("--reference-keypoints", help="optional [18, 4] keypoints of the reference (.npy or .json)")
    p.add_argument("--frames", type=frame_range, help="scene frames A-B (default: the scene's range)")
    p.add_argument("--resolution", type=resolution, help="WxH (default: the scene's)")
    p.add_argument("--samples", type=int, default=ShotSettings.samples,
                   help="Cycles samples of the environment pass (default %(default)s)")
    p.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=ShotSettings.denoise,
                   help="OpenImageDenoise on the environment pass (default on; see bench/RESULTS.md)")
    p.add_argument("--keypoint-map", help="JSON keypoint->bone overrides, or a path to a .json file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--engine", default="preview", help="server engine (default: preview)")
    p.add_argument("--param", type=param, action="append", default=[], metavar="NAME=VALUE",
                   help="engine parameter; repeat for several")
    p.add_argument("--seed", type=int, default=0)


def settings_from_args(args, scene) -> ShotSettings:
    """Arguments + the opened scene's defaults -> ShotSettings."""
    r = scene.render
    start, end = args.frames or (scene.frame_start, scene.frame_end)
    if args.resolution:
        width, height = args.resolution
    else:
        width = r.resolution_x * r.resolution_percentage // 100
        height = r.resolution_y * r.resolution_percentage // 100
    keypoint_map = None
    if args.keypoint_map:
        text = args.keypoint_map
        if os.path.isfile(text):
            with open(text) as fh:
                text = fh.read()
        try:
            keypoint_map = json.loads(text)
        except ValueError as exc:
            raise SetupError("keypoint_map", f"--keypoint-map is not valid JSON ({exc}): "
                                             "give a JSON object or file.") from None
    armature = args.armature
    if not armature:
        from blender_addon.scene.rig import find_character_armature  # bpy: the scene is open already
        armature = find_character_armature(scene).name
    return ShotSettings(
        armature=armature, body=args.body, objects_collection=args.objects,
        reference_path=os.path.abspath(args.reference), reference_keypoints_path=args.reference_keypoints,
        frame_start=start, frame_end=end, width=width, height=height,
        engine=args.engine, params=dict(args.param), seed=args.seed, output_dir=os.path.abspath(args.out),
        channel=getattr(args, "channel", None), server=getattr(args, "server", None) or protocol.DEFAULT_ADDRESS,
        keypoint_map=keypoint_map, samples=args.samples, denoise=getattr(args, "denoise", ShotSettings.denoise),
        name=scene.name, curve_server_key=getattr(args, "curve_server_key", None),
        curve_client_key=getattr(args, "curve_client_key", None))


def open_blend(path: str, scene_name: str | None):
    """Open a .blend with bpy (imported here) and return the chosen scene."""
    import bpy
    if not os.path.isfile(path):
        raise SetupError("blend", f"{path!r} does not exist: give the path of a saved .blend file.")
    with open(path, "rb") as fh:
        head = fh.read(7)
    # Blender's own header, or a compressed .blend (gzip before 3.0, zstd since).
    if not head.startswith((b"BLENDER", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")):
        raise SetupError("blend", f"{path!r} is not a .blend file: give the path of a file saved by Blender.")
    try:
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "Blender could not read it"
        raise SetupError("blend", f"{path!r} cannot be opened ({reason}): give a .blend file saved by this "
                                  "or an earlier Blender.") from None
    if scene_name:
        scene = bpy.data.scenes.get(scene_name)
        if scene is None:
            raise SetupError("scene", f"{path!r} has no scene {scene_name!r}; "
                                      f"it has {[s.name for s in bpy.data.scenes]}.")
        return scene
    return bpy.context.scene
