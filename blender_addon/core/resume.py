"""``inhabit render --resume``: which frames a take already has, and what to generate (bpy-free).

A take folder holds one PNG per frame (and its matte), each written
atomically, so a frame is on disk exactly when both files exist. The take's
``take.json`` records what made it; a resume refuses a take made with other
settings rather than mixing two shots in one folder.

Missing frames are generated in runs, one job per run of consecutive missing
frames. An engine that carries frames from one window (or segment) into the
next declares its windows in INFO (``restart_window``); its run then starts at
the window start holding the first missing frame, and the kept frames between
that start and the gap are generated again so the new window is whole.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from . import protocol, takes
from .settings import SetupError

MANIFEST = "take.json"
# What must match for a take to be continued (the rest -- server, keys, samples -- may change).
_MATCHING = ("engine", "width", "height", "frame_start", "frame_end", "seed", "params")


def manifest_of(settings, params: dict) -> dict:
    return {"engine": settings.engine, "width": settings.width, "height": settings.height,
            "frame_start": settings.frame_start, "frame_end": settings.frame_end,
            "seed": params.get("seed", settings.seed),
            "params": params, "reference": settings.reference_path}


def write_manifest(take_dir: str, manifest: dict) -> None:
    tmp = os.path.join(take_dir, MANIFEST + ".part")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(take_dir, MANIFEST))


def check_manifest(take_dir: str, manifest: dict) -> None:
    """SetupError when the take was made with settings that differ in anything that shapes its frames."""
    path = os.path.join(take_dir, MANIFEST)
    try:
        with open(path) as fh:
            made = json.load(fh)
    except (OSError, ValueError):
        return  # an older take without a manifest: its frame files are all there is to go by
    for key in _MATCHING:
        if key in made and made[key] != manifest[key]:
            raise SetupError("resume", f"--resume: {take_dir} was made with {key} {made[key]!r}, not "
                                       f"{manifest[key]!r}: give the same settings, or run without --resume "
                                       "for a new take.")


def frames_on_disk(take_dir: str, frame_start: int, count: int) -> dict[int, str]:
    """{job index: png path} of the frames the take already holds (frame and matte both written)."""
    found = {}
    for i in range(count):
        name = takes.frame_filename(frame_start + i)
        path = os.path.join(take_dir, name)
        if os.path.isfile(path) and os.path.isfile(os.path.join(take_dir, "matte", name)):
            found[i] = path
    return found


@dataclass(frozen=True)
class Run:
    """One job of a resume: generate indices ``start..end`` (inclusive); ``first_missing``
    is where the gap begins (``start`` is earlier when the engine restarts at a window)."""
    start: int
    end: int
    first_missing: int


def plan(present, count: int, engine_entry: dict, params: dict) -> list[Run]:
    """Jobs that fill every gap of ``range(count)`` not in ``present``."""
    runs: list[Run] = []
    i = 0
    while i < count:
        if i in present:
            i += 1
            continue
        gap_start = i
        while i < count and i not in present:
            i += 1
        start = protocol.restart_frame(engine_entry, params, gap_start)
        if runs and start <= runs[-1].end:  # a window reaching back into the previous run: merge
            prev = runs.pop()
            runs.append(Run(prev.start, i - 1, prev.first_missing))
        else:
            runs.append(Run(start, i - 1, gap_start))
    return runs
