"""Every Blender 4.2-4.5 vs 5.x API difference the add-on meets, in one place.

The passes deliberately avoid the compositor and the File Output node (their
APIs changed most in 5.0: ``scene.compositing_node_group`` instead of
``scene.node_tree``, no Composite node, ``file_output_items``): each render is
saved with ``Image.save_render`` under an image format set here, which works
the same from 4.2 to 5.0 once ``media_type`` (5.0 only) is handled.
"""
from __future__ import annotations

import bpy

VERSION = bpy.app.version
IS_5 = VERSION >= (5, 0, 0)


def set_image_format(settings, kind: str) -> None:
    """Point ImageFormatSettings at 'exr' (uncompressed float multilayer), 'png' (8-bit RGB), 'bmp' (8-bit RGB)
    or 'video' (FFmpeg; the container and codec live in ``render.ffmpeg``).

    5.0 split the format into ``media_type`` + ``file_format``; the media type
    must be set first or the file format enum refuses the value.
    """
    if kind == "exr":
        if hasattr(settings, "media_type"):
            settings.media_type = "MULTI_LAYER_IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER"
        settings.color_depth = "32"
        settings.exr_codec = "NONE"  # core.exr reads uncompressed files only
    elif kind == "video":
        if hasattr(settings, "media_type"):
            settings.media_type = "VIDEO"
        settings.file_format = "FFMPEG"
    elif kind == "bmp":
        if hasattr(settings, "media_type"):
            settings.media_type = "IMAGE"
        settings.file_format = "BMP"
        settings.color_mode = "RGB"
    elif kind == "png":
        if hasattr(settings, "media_type"):
            settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        settings.color_mode = "RGB"
        settings.color_depth = "8"
    else:
        raise ValueError(kind)


IMAGE_FORMAT_FIELDS = ("media_type", "file_format", "color_mode", "color_depth", "exr_codec", "compression")


def image_format_state(settings) -> dict:
    return {k: getattr(settings, k) for k in IMAGE_FORMAT_FIELDS if hasattr(settings, k)}


def restore_image_format(settings, state: dict) -> None:
    """Put the fields back (media_type first, as above). Switching the file format also sets
    ``linear_colorspace_settings``; a fresh scene has it unset (name ''), which no API call restores,
    and Blender then uses the file format's default, which is what switching back to it sets."""
    for k in IMAGE_FORMAT_FIELDS:
        if k in state:
            try:
                setattr(settings, k, state[k])
            except (TypeError, AttributeError, ValueError):
                pass


# How a multilayer EXR names the object index pass: "Object Index" since 5.0,
# the short internal name before.
OBJECT_INDEX_PASS = "Object Index" if IS_5 else "IndexOB"


def strips(sequence_editor):
    """Top-level strips: ``strips`` in 5.0, ``sequences`` before."""
    return sequence_editor.strips if hasattr(sequence_editor, "strips") else sequence_editor.sequences


def strips_all(sequence_editor):
    return sequence_editor.strips_all if hasattr(sequence_editor, "strips_all") else sequence_editor.sequences_all


def strip_end_attr(strip) -> str:
    """The strip's end frame (exclusive): ``right_handle`` from 5.1 on (``frame_final_end`` is
    deprecated there, to go in 6.0), ``frame_final_end`` before."""
    return "right_handle" if hasattr(strip, "right_handle") else "frame_final_end"


def sequencer_scene(context):
    """The scene the Sequencer editor shows: 5.x shows the workspace's ``sequencer_scene``
    (None in a new file: the editor is then empty with a "New" button); 4.x shows context.scene."""
    ws = getattr(context, "workspace", None)
    if ws is None or not hasattr(ws, "sequencer_scene"):
        return context.scene
    return ws.sequencer_scene


def show_in_sequencer(context, scene) -> object | None:
    """Make the Sequencer editor show ``scene`` when it shows nothing (5.x, a new file); return the scene
    it shows afterwards (``scene`` itself on 4.x), which may be another the user chose."""
    ws = getattr(context, "workspace", None)
    if ws is None or not hasattr(ws, "sequencer_scene"):
        return scene
    if ws.sequencer_scene is None:
        ws.sequencer_scene = scene
    return ws.sequencer_scene


def show_in_every_sequencer(scene) -> None:
    """Every workspace's Sequencer editor that shows nothing shows ``scene`` (5.x; for saved files such
    as the demo's, opened later in a window)."""
    for ws in bpy.data.workspaces:
        if hasattr(ws, "sequencer_scene") and ws.sequencer_scene is None:
            ws.sequencer_scene = scene


def cycles_denoisers(scene) -> list[str]:
    """The denoisers the running Cycles offers (its own dynamic list: OPTIX needs an NVIDIA GPU, and
    OPENIMAGEDENOISE is missing from some builds, e.g. Debian's)."""
    try:
        from cycles import properties as cycles_properties
        return [item[0] for item in cycles_properties.enum_denoiser(scene.cycles, bpy.context)]
    except (ImportError, AttributeError, TypeError):
        try:
            import _cycles
        except ImportError:
            return []
        return ["OPENIMAGEDENOISE"] if getattr(_cycles, "with_openimagedenoise", False) else []


# `//` (blend-relative) paths in FILE_PATH/DIR_PATH fields: 5.x draws them red unless the property
# says it supports them. The option came with ``Property.is_path_supports_blend_relative`` (absent in
# 4.2, where such paths are drawn and resolved without asking).
PATH_OPTIONS = ({"PATH_SUPPORTS_BLEND_RELATIVE"}
                if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties else set())
