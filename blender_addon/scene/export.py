"""One shot's per-frame export: the exact dict of ``protocol.FRAME_INPUTS``.

``ShotExporter`` checks the scene up front (armature, body, camera, objects,
keypoint mapping, reference image), prepares the proxy body when needed, and
then produces frame after frame. Use it as a context manager: leaving restores
every render setting it changed.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile

import bpy
import numpy as np

from ..core import conventions, keypoint_map, protocol
from ..core.settings import SetupError, ShotSettings
from . import keypoints as kp_mod
from .passes import PassRenderer, read_image_rgba
from .proxy import ensure_proxy_body
from .rig import driven_objects

log = logging.getLogger(__name__)


def labelled_objects(scene, collection_name: str | None) -> list:
    """Objects the character interacts with, in a stable order (by name)."""
    if not collection_name:
        return []
    coll = bpy.data.collections.get(collection_name)
    if coll is None:
        raise SetupError("objects_collection", f"Collection {collection_name!r} does not exist: pick the collection "
                                               "that holds the objects the character touches, or leave it empty.")
    objs = sorted((o for o in coll.all_objects if o.type in {"MESH", "CURVE", "SURFACE", "META", "FONT"}),
                  key=lambda o: o.name)
    if len(objs) > protocol.DEFAULT_LIMITS["max_objects"]:
        raise SetupError("objects_collection", f"Collection {collection_name!r} has {len(objs)} objects; at most "
                                               f"{protocol.DEFAULT_LIMITS['max_objects']} can be tagged.")
    return objs


def body_objects(name: str) -> list:
    """The character's meshes: a mesh object plus the meshes parented under it
    (clothes, hair, eyes), or every mesh of a collection of that name."""
    obj = bpy.data.objects.get(name)
    if obj is not None:
        if obj.type != "MESH":
            return []
        return [obj] + [c for c in obj.children_recursive if c.type == "MESH"]
    coll = bpy.data.collections.get(name)
    if coll is not None:
        return sorted((o for o in coll.all_objects if o.type == "MESH"), key=lambda o: o.name)
    return []


def check_scene(scene, s: ShotSettings):
    """Scene checks that need Blender; returns (armature, mapping)."""
    if not s.armature:
        raise SetupError("armature", "No armature chosen: pick the armature that drives the character "
                                     "in the Inhabit panel.")
    arm = bpy.data.objects.get(s.armature)
    if arm is None or arm.type != "ARMATURE":
        what = "does not exist" if arm is None else f"is a {arm.type.lower()}, not an armature"
        raise SetupError("armature", f"Object {s.armature!r} {what}: pick the character's armature.")
    if scene.camera is None:
        raise SetupError("camera", f"Scene {scene.name!r} has no active camera: add a camera and make it active "
                                   "(Ctrl+Numpad 0).")
    if s.body and not body_objects(s.body):
        raise SetupError("body", f"Body {s.body!r} is neither a mesh object nor a collection with meshes in this file: "
                                 "pick the character's mesh, or leave it empty to use a proxy body.")
    driven = [] if s.body else driven_objects(scene, arm)
    try:
        mapping = kp_mod.resolve_for(arm, s.keypoint_map)
    except keypoint_map.MappingError as exc:
        if not s.body and not driven:
            raise SetupError("armature", f"Armature {arm.name!r} drives no mesh and its {len(arm.data.bones)} bones "
                                         "do not make a body (hips, spine, head, two arms, two legs): bind the "
                                         "character's mesh to a full humanoid rig, or set a keypoint "
                                         "mapping.") from None
        raise SetupError("keypoint_map", str(exc) + ".") from None
    return arm, mapping


def character_objects(scene, armature, s: ShotSettings) -> list:
    """The body the passes render: the user's pick, else whatever the armature
    drives, else (nothing driven) the capsule proxy."""
    if s.body:
        return body_objects(s.body)
    return driven_objects(scene, armature) or ensure_proxy_body(scene, armature)


def load_reference(s: ShotSettings) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        ref = read_image_rgba(s.reference_path)
    except Exception as exc:
        raise SetupError("reference", f"Reference image {s.reference_path!r} cannot be read ({exc}): "
                                      "save it as PNG or JPEG.") from None
    ref_kp = None
    if s.reference_keypoints_path:
        path = s.reference_keypoints_path
        try:
            if path.endswith(".npy"):
                ref_kp = np.load(path, allow_pickle=False)
            else:
                with open(path) as fh:
                    ref_kp = np.asarray(json.load(fh), np.float32)
        except Exception as exc:
            raise SetupError("reference_keypoints", f"Reference keypoints {path!r} cannot be read ({exc}): "
                                                    "give a .npy or .json array of shape [18, 4].") from None
        ref_kp = np.asarray(ref_kp, np.float32)
        if ref_kp.shape != (conventions.NUM_KEYPOINTS, 4):
            raise SetupError("reference_keypoints", "Reference keypoints must have shape "
                                                    f"[{conventions.NUM_KEYPOINTS}, 4], got {list(ref_kp.shape)}.")
    return ref, ref_kp


class ShotExporter:
    """Produces FRAME_INPUTS dicts for job frame index 0..N-1 (scene frames start..end)."""

    def __init__(self, shot, *, workdir: str | None = None, pass_options: dict | None = None):
        """``shot``: a ``blender_addon.shot.ResolvedShot`` (scene checked, rig mapped);
        ``pass_options``: extra ``PassRenderer`` arguments (tests and benchmarks compare paths with them)."""
        self.shot = shot
        self.scene = scene = shot.scene
        self.settings = settings = shot.settings
        self.armature, self.mapping = shot.armature, shot.mapping
        self.camera = scene.camera
        self.body_objects = character_objects(scene, self.armature, settings)
        self.labelled = labelled_objects(scene, settings.objects_collection)
        self.object_names = [o.name for o in self.labelled]
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="inhabit-passes-")
        self.renderer: PassRenderer | None = None
        self._closed_renderer: PassRenderer | None = None
        self.pass_options = dict(pass_options or {})

    def __enter__(self):
        s = self.settings
        self.renderer = PassRenderer(self.scene, body_objects=self.body_objects, labelled_objects=self.labelled,
                                     width=s.width, height=s.height, samples=s.samples, denoise=s.denoise,
                                     workdir=self.workdir, **self.pass_options)
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def render_stats(self) -> dict:
        """Environment renders made and frames that reused one, so far."""
        r = self.renderer or self._closed_renderer
        return {"renders": r.renders if r else 0, "reused": r.reused if r else 0,
                "seconds": dict(r.seconds) if r else {}}

    def stats_text(self) -> str:
        st = self.render_stats
        return (f"{st['renders'] + st['reused']} frames exported, {st['reused']} reused the previous environment "
                f"render ({st['renders']} renders)")

    def close(self):
        if self.renderer is not None:
            self.renderer.close()
            self._closed_renderer = self.renderer
            self.renderer = None
            log.info("shot %s: %s", self.shot.name, self.stats_text())
        if self._own_workdir:
            for name in os.listdir(self.workdir):
                try:
                    os.remove(os.path.join(self.workdir, name))
                except OSError:
                    pass
            try:
                os.rmdir(self.workdir)
            except OSError:
                pass

    def scene_frame(self, index: int) -> int:
        return self.settings.frame_start + index

    def export_frame(self, index: int) -> dict:
        """All FRAME_INPUTS for job frame ``index``, checked against the protocol."""
        if self.renderer is None:
            raise RuntimeError("ShotExporter must be entered (with ...) before exporting")
        s = self.settings
        arrays = self.renderer.render_frame(self.scene_frame(index))
        args = (self.scene, self.camera, self.armature, self.mapping, s.width, s.height, arrays["scene_depth"])
        arrays["keypoints"] = kp_mod.project_keypoints(*args)
        arrays["hand_keypoints"] = kp_mod.project_hands(*args)
        arrays["toe_keypoints"] = kp_mod.project_toes(*args)
        arrays["face_box"] = kp_mod.project_face_box(*args)
        protocol.check_frame_inputs(arrays, height=s.height, width=s.width, n_objects=len(self.labelled))
        return arrays

    def job_spec(self, request: str = "") -> protocol.JobSpec:
        """The SUBMIT of this shot (params as resolved against the server)."""
        s = self.settings
        return protocol.JobSpec(engine=s.engine, width=s.width, height=s.height, frames=s.frame_count,
                                params=dict(self.shot.params), objects=list(self.object_names),
                                name=self.shot.name, request=request)
