"""One dataset worker: ``python -m backend.blender.clips.worker ROOT SEED FRAMES SIZE SAMPLES I,J,... [MOTIONS]``.

``inhabit dataset make`` starts W of these (bpy as a module, one Blender
each) and watches the clip folders appear; a clip already complete is
skipped, so a restarted run continues where the last one stopped.
"""
from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    root, seed, frames, size, samples, clips, *motions_dir = argv
    import bpy  # noqa: F401  (first: bpy_extras and mathutils come with it)

    from backend.training.data import layout

    from .render_clip import render_clip
    bvh = None
    if motions_dir:   # the files were checked and listed in the manifest by `inhabit dataset make`
        with open(os.path.join(root, "manifest.json")) as fh:
            manifest = json.load(fh)
        bvh = {"folder": motions_dir[0], "motions": manifest["motions"], "share": manifest["motion_share"]}
    for i in (int(x) for x in clips.split(",") if x):
        if not layout.is_complete(root, i):
            render_clip(root, i, seed=int(seed), frames=int(frames), size=int(size), samples=int(samples), bvh=bvh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
