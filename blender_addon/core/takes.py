"""Output folders: one folder per take, never overwriting an earlier take."""
from __future__ import annotations

import os
import re

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-system-safe version of a shot name (spaces and odd characters -> '_')."""
    return _SAFE.sub("_", name).strip("._") or "shot"


def next_take_dir(output_dir: str, shot_name: str) -> str:
    """Create and return ``output_dir/<shot>/take_NNN`` with the next free number.

    ``os.mkdir`` (not makedirs with exist_ok) claims the number, so two jobs
    started at once still get different takes.
    """
    shot_dir = os.path.join(output_dir, safe_name(shot_name))
    os.makedirs(shot_dir, exist_ok=True)
    taken = [int(m.group(1)) for d in os.listdir(shot_dir) if (m := re.fullmatch(r"take_(\d+)", d))]
    n = max(taken, default=0) + 1
    while True:
        path = os.path.join(shot_dir, f"take_{n:03d}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1


def frame_filename(scene_frame: int) -> str:
    """PNG name for a scene frame; the number is the scene frame, so the
    sequence lines up with the timeline when browsed by hand."""
    return f"frame_{scene_frame:05d}.png"


def strip_name(shot_name: str, take_dir: str) -> str:
    return f"{safe_name(shot_name)}_{os.path.basename(take_dir)}"


def latest_take_dir(output_dir: str, shot_name: str) -> str | None:
    """The highest-numbered existing take of the shot (what ``--resume`` continues), or None."""
    shot_dir = os.path.join(output_dir, safe_name(shot_name))
    if not os.path.isdir(shot_dir):
        return None
    taken = [(int(m.group(1)), d) for d in os.listdir(shot_dir)
             if (m := re.fullmatch(r"take_(\d+)", d)) and os.path.isdir(os.path.join(shot_dir, d))]
    return os.path.join(shot_dir, max(taken)[1]) if taken else None
