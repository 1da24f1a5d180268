"""Per-scene Inhabit settings (``scene.inhabit``) and their ShotSettings."""
from __future__ import annotations

import json

import bpy

from ..core import protocol
from ..core.settings import SetupError, ShotSettings


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

    def value(self):
        return {"int": self.int_value, "float": self.float_value, "bool": self.bool_value}.get(self.kind, self.str_value)


class InhabitSceneProps(bpy.types.PropertyGroup):
    server: bpy.props.StringProperty(name="Server", default=protocol.DEFAULT_ADDRESS,
                                     description="ZeroMQ address of the Inhabit server")
    engine: bpy.props.StringProperty(name="Engine", default="preview",
                                     description="Engine on the server (see Test Connection)")
    params: bpy.props.CollectionProperty(type=InhabitParam)

    armature: bpy.props.PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                                        description="The armature that drives the character")
    body: bpy.props.PointerProperty(name="Body", type=bpy.types.Object, poll=_is_mesh,
                                    description="Mesh that stands for the character; empty = proxy capsules along the bones")
    objects_collection: bpy.props.PointerProperty(name="Interacts With", type=bpy.types.Collection,
                                                  description="Objects the character touches (one label each)")
    reference_path: bpy.props.StringProperty(name="Reference", subtype="FILE_PATH",
                                             description="Image of the character to animate")
    reference_keypoints_path: bpy.props.StringProperty(name="Reference Pose", subtype="FILE_PATH",
                                                       description="Optional [18, 4] keypoints of the reference (.npy/.json)")
    keypoint_map: bpy.props.StringProperty(name="Keypoint Mapping",
                                           description='JSON overrides, e.g. {"left_wrist": "hand.L", "nose": ["Nose", "tail"]}')

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

    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH",
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
    keypoint_map = None
    if p.keypoint_map.strip():
        try:
            keypoint_map = json.loads(p.keypoint_map)
        except ValueError as exc:
            raise SetupError("keypoint_map", f"Keypoint mapping is not valid JSON ({exc}): fix it in the panel.") from None
    return ShotSettings(
        armature=p.armature.name if p.armature else "",
        body=p.body.name if p.body else None,
        objects_collection=p.objects_collection.name if p.objects_collection else None,
        reference_path=bpy.path.abspath(p.reference_path) if p.reference_path else "",
        reference_keypoints_path=bpy.path.abspath(p.reference_keypoints_path) if p.reference_keypoints_path else None,
        frame_start=start, frame_end=end, width=width, height=height,
        engine=p.engine, params={prm.name: prm.value() for prm in p.params}, seed=p.seed,
        output_dir=bpy.path.abspath(p.output_dir) if p.output_dir else default_output_dir(bpy.data.filepath),
        channel=p.channel or None, server=p.server, keypoint_map=keypoint_map, samples=p.samples, denoise=p.denoise,
        name=scene.name)


def fill_params_from_info(scene, info: dict) -> None:
    """Rebuild the engine-parameter list from the server's INFO, keeping values the user set."""
    p = scene.inhabit
    engines = {e.get("name"): e for e in info.get("engines", [])}
    if p.engine not in engines and engines:
        p.engine = sorted(engines)[0]
    old = {prm.name: prm.value() for prm in p.params}
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


CLASSES = (InhabitParam, InhabitSceneProps)


def register_props():
    bpy.types.Scene.inhabit = bpy.props.PointerProperty(type=InhabitSceneProps)


def unregister_props():
    del bpy.types.Scene.inhabit
