"""Per-scene Inhabit settings (``scene.inhabit``) and their ShotSettings."""
from __future__ import annotations

import json

import bpy

from .. import compat
from ..core import conventions, protocol
from ..core.settings import SetupError, ShotSettings
from .preferences import key_settings


def _is_armature(self, obj):
    return obj.type == "ARMATURE"


def _is_mesh(self, obj):
    return obj.type == "MESH"


class InhabitParam(bpy.types.PropertyGroup):
    """One engine parameter as declared by the server (kind picks the value field)."""
    kind: bpy.props.StringProperty()
    doc: bpy.props.StringProperty()
    int_value: bpy.props.IntProperty(name="Value")
    float_value: bpy.props.FloatProperty(name="Value")
    bool_value: bpy.props.BoolProperty(name="Value")
    str_value: bpy.props.StringProperty(name="Value")
    choices: bpy.props.StringProperty()  # JSON list for kind == "choice"


def _keypoint_items(self, context):
    # Body and face first (what most fixes are about), then the hands.
    return _KEYPOINT_ITEMS


_KEYPOINT_ITEMS = [(k, k.replace("_", " "), "") for k in
                   conventions.KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES + conventions.HAND_KEYPOINT_NAMES]


def param_value(prm):
    """The value of an ``InhabitParam`` in the field its kind picks. (Not a method: bpy 4.2 as a
    module crashes on exit once a PropertyGroup with a Python method was registered.)"""
    values = {"int": prm.int_value, "float": prm.float_value, "bool": prm.bool_value}
    return values.get(prm.kind, prm.str_value)


class InhabitJointFix(bpy.types.PropertyGroup):
    """The user's fix of one keypoint: which bone (head or tail) carries it. Saved in the .blend."""
    keypoint: bpy.props.StringProperty(name="Keypoint")
    bone: bpy.props.StringProperty(name="Bone")
    end: bpy.props.EnumProperty(name="End", items=(("head", "Head", ""), ("tail", "Tail", "")), default="head")


class InhabitMappingRow(bpy.types.PropertyGroup):
    """One line of the mapping found (shown in the panel): keypoint -> bone, and how."""
    keypoint: bpy.props.StringProperty()
    bone: bpy.props.StringProperty()
    how: bpy.props.StringProperty()


class InhabitSceneProps(bpy.types.PropertyGroup):
    server: bpy.props.StringProperty(name="Server", default=protocol.DEFAULT_ADDRESS,
                                     description="ZeroMQ address of the Inhabit server")
    engine: bpy.props.StringProperty(name="Engine", default="preview",
                                     description="Engine on the server (see Test Connection)")
    params: bpy.props.CollectionProperty(type=InhabitParam)

    armature: bpy.props.PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                                        description="The armature that drives the character; empty = the scene's one "
                                                    "character armature")
    body: bpy.props.PointerProperty(name="Body", type=bpy.types.Object, poll=_is_mesh,
                                    description="Mesh that stands for the character; empty = the meshes the armature "
                                                "drives (proxy capsules along the bones if none)")
    objects_collection: bpy.props.PointerProperty(name="Interacts With", type=bpy.types.Collection,
                                                  description="Objects the character touches (one label each)")
    reference_path: bpy.props.StringProperty(name="Reference", subtype="FILE_PATH", options=compat.PATH_OPTIONS,
                                             description="Image of the character to animate")
    reference_keypoints_path: bpy.props.StringProperty(name="Reference Pose", subtype="FILE_PATH",
                                                       options=compat.PATH_OPTIONS,
                                                       description="Optional [18, 4] keypoints of the reference "
                                                                   "(.npy/.json)")
    keypoint_map: bpy.props.StringProperty(name="Keypoint Mapping",
                                           description='JSON overrides, e.g. {"left_wrist": "hand.L", '
                                                       '"nose": ["Nose", "tail"]}')
    joint_fixes: bpy.props.CollectionProperty(type=InhabitJointFix)
    mapping_rows: bpy.props.CollectionProperty(type=InhabitMappingRow)
    mapping_summary: bpy.props.StringProperty(name="Mapping")
    fix_keypoint: bpy.props.EnumProperty(name="Keypoint", items=_keypoint_items,
                                         description="Keypoint to put on another bone")
    fix_bone: bpy.props.StringProperty(name="Bone", description="Bone that carries the keypoint")
    fix_end: bpy.props.EnumProperty(name="End", items=(("head", "Head", ""), ("tail", "Tail", "")), default="head")

    use_scene_range: bpy.props.BoolProperty(name="Scene Range", default=True)
    frame_start: bpy.props.IntProperty(name="Start", default=1)
    frame_end: bpy.props.IntProperty(name="End", default=24)
    use_scene_resolution: bpy.props.BoolProperty(name="Scene Resolution", default=True)
    width: bpy.props.IntProperty(name="Width", default=512, min=8, max=8192)
    height: bpy.props.IntProperty(name="Height", default=512, min=8, max=8192)
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    samples: bpy.props.IntProperty(name="Samples", default=ShotSettings.samples, min=1, max=4096,
                                   description="Cycles samples of the environment pass")
    denoise: bpy.props.BoolProperty(name="Denoise", default=ShotSettings.denoise,
                                    description="OpenImageDenoise on the environment pass")

    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", options=compat.PATH_OPTIONS,
                                         description="Folder for the takes; empty = 'inhabit' next to the .blend")
    channel: bpy.props.IntProperty(name="Channel", default=0, min=0, max=128,
                                   description="Sequencer channel; 0 = first free above existing strips")


def settings_from_scene(scene) -> ShotSettings:
    """Scene properties -> ShotSettings (no validation beyond parsing)."""
    from ..session import default_output_dir
    p = scene.inhabit
    r = scene.render
    if p.use_scene_resolution:
        width = r.resolution_x * r.resolution_percentage // 100
        height = r.resolution_y * r.resolution_percentage // 100
    else:
        width, height = p.width, p.height
    start, end = (scene.frame_start, scene.frame_end) if p.use_scene_range else (p.frame_start, p.frame_end)
    keypoint_map = user_mapping(p)
    armature = p.armature
    if armature is None:
        # Nothing picked: the scene's one character armature, or a sentence naming the candidates.
        from ..scene.rig import find_character_armature
        armature = find_character_armature(scene)
    return ShotSettings(
        armature=armature.name,
        body=p.body.name if p.body else None,
        objects_collection=p.objects_collection.name if p.objects_collection else None,
        reference_path=_path(p.reference_path, "reference", "Reference") or "",
        reference_keypoints_path=_path(p.reference_keypoints_path, "reference_keypoints", "Reference Pose"),
        frame_start=start, frame_end=end, width=width, height=height,
        engine=p.engine, params={prm.name: param_value(prm) for prm in p.params}, seed=p.seed,
        output_dir=_path(p.output_dir, "output_dir", "Output") or default_output_dir(bpy.data.filepath),
        channel=p.channel or None, server=p.server, keypoint_map=keypoint_map, samples=p.samples,
        denoise=p.denoise, name=scene.name, **key_settings(bpy.context))


def _path(value: str, field: str, label: str) -> str | None:
    """A path field as an absolute path; ``//`` means next to the saved .blend."""
    if not value:
        return None
    if value.startswith("//") and not bpy.data.filepath:
        raise SetupError(field, f"{label} {value!r} is relative to the .blend file, which is not saved yet: save the "
                                "file first or pick the path again.")
    return bpy.path.abspath(value)


def user_mapping(p) -> dict | None:
    """The JSON mapping of the panel with the per-joint fixes on top (fixes win)."""
    keypoint_map = None
    if p.keypoint_map.strip():
        try:
            keypoint_map = json.loads(p.keypoint_map)
        except ValueError as exc:
            raise SetupError("keypoint_map", f"Keypoint mapping is not valid JSON ({exc}): "
                                             "fix it in the panel.") from None
        if not isinstance(keypoint_map, dict):
            raise SetupError("keypoint_map", "Keypoint mapping must be a JSON object {keypoint: bone}: "
                                             "fix it in the panel.")
    if len(p.joint_fixes):
        keypoint_map = dict(keypoint_map or {})
        for fix in p.joint_fixes:
            keypoint_map[fix.keypoint] = [fix.bone, fix.end]
    return keypoint_map


def refresh_mapping_rows(scene) -> str:
    """Map the panel's armature again and fill the rows the panel shows; return the summary."""
    from ..core.keypoint_map import MappingError
    from ..scene.rig import find_character_armature, map_armature
    p = scene.inhabit
    p.mapping_rows.clear()
    try:
        arm = p.armature or find_character_armature(scene)
        m = map_armature(arm, user_mapping(p))
    except (SetupError, MappingError) as exc:
        p.mapping_summary = str(getattr(exc, "message", exc))
        return p.mapping_summary
    for k, bone, how in m.rows(conventions.KEYPOINT_NAMES + conventions.TOE_KEYPOINT_NAMES):
        row = p.mapping_rows.add()
        row.keypoint, row.bone, row.how = k, bone, how
    box = "yes" if m.face_box else "no"
    p.mapping_summary = (f"{arm.name}: {m.convention}, {m.body_mapped()}/13 body, "
                         f"{m.hands_mapped()}/{conventions.NUM_HAND_KEYPOINTS} hand, face box {box}"
                         + "".join(f"; {n}" for n in m.notes))
    return p.mapping_summary


def fill_params_from_info(scene, info: dict) -> None:
    """Rebuild the engine-parameter list from the server's INFO, keeping values the user set."""
    p = scene.inhabit
    engines = {e.get("name"): e for e in info.get("engines", [])}
    if p.engine not in engines and engines:
        p.engine = sorted(engines)[0]
    old = {prm.name: param_value(prm) for prm in p.params}
    p.params.clear()
    for spec in engines.get(p.engine, {}).get("params", []):
        if spec["name"] == "seed":
            continue  # the Seed field above is the job's seed
        prm = p.params.add()
        prm.name, prm.kind, prm.doc = spec["name"], spec["kind"], spec.get("doc", "")
        prm.choices = json.dumps(spec.get("choices") or [])
        value = old.get(spec["name"], spec.get("default"))
        try:
            if prm.kind == "int":
                prm.int_value = int(value)
            elif prm.kind == "float":
                prm.float_value = float(value)
            elif prm.kind == "bool":
                prm.bool_value = bool(value)
            else:
                prm.str_value = "" if value is None else str(value)
        except (TypeError, ValueError):
            pass


CLASSES = (InhabitParam, InhabitJointFix, InhabitMappingRow, InhabitSceneProps)


def register_props():
    bpy.types.Scene.inhabit = bpy.props.PointerProperty(type=InhabitSceneProps)


def unregister_props():
    del bpy.types.Scene.inhabit
