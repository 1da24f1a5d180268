"""Bringing a user's character or motion into Blender, with every known
importer trap handled here and nowhere else (bpy).

Traps (each has a test in tests/test_character_import.py):
* Blender 5.0.1's FBX importer sets ``light.cycles.cast_shadow``, which
  Cycles no longer defines: any FBX holding a light raises AttributeError.
  ``fbx_light_trap`` gives the property group that field before importing.
* glTF animation is resampled to the scene's fps *at import time*: import
  with the fps the shot will play at, or every clip runs at the wrong speed.
* The glTF importer creates a bone-shape mesh ("Icosphere") in the scene
  unless ``disable_bone_shape`` is set; it would render as part of the room.
"""
from __future__ import annotations

import os

import bpy

from blender_addon.core.settings import SetupError

CHARACTER_SUFFIXES = (".glb", ".gltf", ".fbx", ".blend")


def fbx_light_trap() -> bool:
    """Make ``light.cycles.cast_shadow`` writable; True when it had to be added.

    Checked by writing, not ``hasattr``: after ``read_factory_settings`` an
    earlier definition can linger read-only."""
    light = bpy.data.lights.new("_inhabit_probe", "POINT")
    try:
        try:
            light.cycles.cast_shadow = True
            return False
        except AttributeError:
            pass
        settings = type(light.cycles)
        if "cast_shadow" in settings.__dict__:
            del settings.cast_shadow
        settings.cast_shadow = bpy.props.BoolProperty(name="Cast Shadow", default=True)
        return True
    finally:
        bpy.data.lights.remove(light)


def import_character(path: str, scene, *, fps: int | None = None) -> list:
    """Import a rigged character file into ``scene``; return the new objects.

    ``fps``: the rate the shot plays at, set on the scene *before* a glTF
    import so its clips keep their real duration.
    """
    path = os.path.abspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in CHARACTER_SUFFIXES:
        raise SetupError("character", f"{path!r} is not a .glb, .gltf, .fbx or .blend file: export the character "
                                      "as glTF or FBX.")
    if not os.path.isfile(path):
        raise SetupError("character", f"Character file {path!r} does not exist: give the path of a .glb, .gltf, "
                                      ".fbx or .blend file.")
    before = set(bpy.data.objects)
    if fps:
        scene.render.fps, scene.render.fps_base = int(fps), 1.0
    try:
        if ext in (".glb", ".gltf"):
            have = bpy.ops.import_scene.gltf.get_rna_type().properties.keys()
            options = {k: v for k, v in (("disable_bone_shape", True), ("import_select_created_objects", False))
                       if k in have}
            bpy.ops.import_scene.gltf(filepath=path, **options)
        elif ext == ".fbx":
            fbx_light_trap()
            bpy.ops.import_scene.fbx(filepath=path)
        else:
            _append_blend(path)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "Error" in ln and "Traceback" not in ln]
        last = (lines[-1] if lines else type(exc).__name__)[:160]
        raise SetupError("character", f"Blender could not import {os.path.basename(path)!r} ({last}): re-export "
                                      "it as glTF 2.0 (.glb).") from None
    new = [o for o in bpy.data.objects if o not in before]
    for obj in new:
        if obj.name not in scene.objects:
            scene.collection.objects.link(obj)
    # Importers bring their own lights and cameras; the shot keeps its own.
    for obj in [o for o in new if o.type in ("LIGHT", "CAMERA")]:
        bpy.data.objects.remove(obj)
    # Bone display shapes (a glTF importer's "Icosphere" where the option is missing,
    # Rigify's WGT- widgets in an appended .blend) are not part of the character.
    shapes = {pb.custom_shape for o in bpy.data.objects if o.type == "ARMATURE" for pb in o.pose.bones
              if pb.custom_shape is not None}
    for obj in shapes:
        in_scene = {scene.collection, *scene.collection.children_recursive}
        for coll in [c for c in obj.users_collection if c in in_scene]:
            coll.objects.unlink(obj)
    return [o for o in bpy.data.objects if o not in before and o.name in scene.objects]


def _append_blend(path: str) -> None:
    with bpy.data.libraries.load(path, link=False) as (src, dst):
        dst.objects = list(src.objects)
    for obj in dst.objects:
        if obj is not None and obj.type not in ("LIGHT", "CAMERA"):
            bpy.context.scene.collection.objects.link(obj)


def import_bvh(path: str, scene, *, fps: int | None = None):
    """Import a BVH as its own armature; return it. Frames are mapped 1:1 to
    scene frames at the scene's fps (``fps`` first, when given)."""
    path = os.path.abspath(path)
    if not os.path.isfile(path) or not path.lower().endswith(".bvh"):
        raise SetupError("motion", f"Motion file {path!r} is not an existing .bvh file: give a BVH mocap file.")
    if fps:
        scene.render.fps, scene.render.fps_base = int(fps), 1.0
    before = set(bpy.data.objects)
    try:
        bpy.ops.import_anim.bvh(filepath=path, use_fps_scale=True, update_scene_fps=False,
                                update_scene_duration=False, rotate_mode="NATIVE")
    except RuntimeError as exc:
        raise SetupError("motion", f"{os.path.basename(path)!r} is not a readable BVH ({str(exc).strip()[-120:]}): "
                                   "check the file.") from None
    new = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
    if not new:
        raise SetupError("motion", f"{os.path.basename(path)!r} holds no skeleton: give a BVH mocap file.")
    return new[0]
