"""The BVH files of ``inhabit dataset make --motions DIR`` (no bpy): listing, length, identity.

A clip that uses a BVH takes F consecutive scene frames of it at the
dataset's frame rate (the importer rescales the mocap's own rate to it), so
a file must cover at least F of them. The manifest records each file's name,
SHA-256 and length, so a resumed run with other motion files is refused
instead of mixing two datasets.
"""
from __future__ import annotations

import hashlib
import math
import os

SCENE_FPS = 24   # configure_render's frame rate: the clip's frames are these


class MotionError(ValueError):
    """Bad --motions input; the message is one sentence naming the file and the fix."""


def bvh_timing(path: str) -> tuple[int, float]:
    """(frame count, seconds per frame) from a BVH's MOTION header."""
    frames = frame_time = None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            key, _, value = line.strip().partition(":")
            try:
                if key.lower() == "frames":
                    frames = int(value)
                elif key.lower() == "frame time":
                    frame_time = float(value)
            except ValueError:
                break
            if frames is not None and frame_time is not None:
                break
    name = os.path.basename(path)
    if frames is None or frame_time is None or frames < 1 or not frame_time > 0:
        raise MotionError(f"--motions file {name!r} has no valid 'Frames:' and 'Frame Time:' header: "
                          "give a BVH mocap file.")
    return frames, frame_time


def scene_frames(frames: int, frame_time: float, fps: int = SCENE_FPS) -> int:
    """Whole scene frames the motion covers once rescaled to ``fps`` (frame 0 included)."""
    return int(math.floor((frames - 1) * frame_time * fps + 1e-6)) + 1


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def list_motions(folder: str, clip_frames: int) -> list[dict]:
    """Every ``*.bvh`` in ``folder`` (sorted by name): file, sha256, frames (scene frames at SCENE_FPS)."""
    if not os.path.isdir(folder):
        raise MotionError(f"--motions {folder!r} is not a folder: pass a folder of .bvh files.")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".bvh"))
    if not names:
        raise MotionError(f"--motions {folder!r} holds no .bvh file: add BVH mocap files or leave --motions out.")
    out = []
    for name in names:
        path = os.path.join(folder, name)
        n = scene_frames(*bvh_timing(path))
        if n < clip_frames:
            raise MotionError(f"--motions file {name!r} covers {n} frames at {SCENE_FPS} fps, fewer than --frames "
                              f"{clip_frames}: use a longer BVH or fewer --frames.")
        out.append({"file": name, "sha256": _sha256(path), "frames": n})
    return out
