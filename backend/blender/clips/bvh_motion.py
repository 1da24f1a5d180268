"""BVH motions for dataset clips (bpy): checked up front, then retargeted onto the random character.

The retargeting is the demo's (``backend/blender/demo/retarget.py``): both
skeletons go through the keypoint map of ``blender_addon/core/rig_map.py``,
so any humanoid BVH drives the character whatever its bone names. A clip
takes scene frames ``offset .. offset + F - 1`` of the file (at the
dataset's 24 fps, the file's start on scene frame 1), baked onto the
clip's frames 1..F.

``python -m backend.blender.clips.bvh_motion DIR FILE...`` imports and
maps each file before any clip is rendered: a file that cannot drive a body
gets one sentence naming it and exit code 2.
"""
from __future__ import annotations

import os
import sys

from backend.training.data.motions import SCENE_FPS, MotionError


def _source(path: str, scene):
    from blender_addon.core import keypoint_map
    from blender_addon.core.settings import SetupError
    from backend.blender.imports import import_bvh
    from blender_addon.scene.rig import map_armature

    from ..demo.retarget import map_bvh_source
    name = os.path.basename(path)
    try:
        src = import_bvh(path, scene, fps=SCENE_FPS)
        map_armature(src)
    except SetupError as exc:      # not a readable BVH: the importer's sentence, led by the option
        raise MotionError(f"--motions: {exc.message}") from None
    except keypoint_map.MappingError:
        raise MotionError(f"--motions file {name!r} holds no skeleton the keypoint map recognises as a body: "
                          "remove it, or use a humanoid BVH (CMU-style names, or any two-armed, two-legged "
                          "skeleton).") from None
    try:
        map_bvh_source(src)           # mapped, but are all the joints the retargeting drives there?
    except SetupError as exc:
        raise MotionError(f"--motions file {name!r}: {exc.message}") from None
    return src


def check_files(folder: str, names: list[str]) -> None:
    """Import and map every file in an empty scene; raise MotionError for the first that fails."""
    import bpy
    for name in names:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        _source(os.path.join(folder, name), bpy.context.scene)


def drive_with_bvh(scene, arm, path: str, offset: int, frames: int) -> None:
    """Bake scene frames ``offset..offset+frames-1`` of ``path`` onto ``arm`` as the clip's frames 1..frames."""
    from blender_addon.scene.rig import map_armature

    from ..demo.retarget import retarget_bvh
    src = _source(path, scene)
    retarget_bvh(src, arm, map_armature(arm), scene, frames, start=1 + offset, to_frame=1)
    scene.render.fps, scene.render.fps_base = SCENE_FPS, 1.0
    scene.frame_start, scene.frame_end = 1, frames


def main(argv: list[str]) -> int:
    import bpy  # noqa: F401  (first: mathutils comes with it)
    folder, names = argv[0], argv[1:]
    try:
        check_files(folder, names)
    except MotionError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
