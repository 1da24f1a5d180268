"""Render the per-frame passes headless and read them into numpy.

Per frame:

1. environment: one Cycles render of the scene without the character (its
   meshes are hidden once when the shot starts, never toggled per frame, so
   the depsgraph reports only real changes), saved with ``Image.save_render``
   (which works in background mode, unlike the Viewer node) as BMP (the
   user's view transform, as the user would see it) + uncompressed multilayer
   EXR for Depth and Object Index (labels of tagged objects). When nothing it
   depends on changed since the last render (``changes.ChangeTracker``), the
   last render is reused: a locked-off shot renders once.
2. character: depth of the body's own evaluated triangles, z-buffered at the
   pixel centres (``raster``); the full, unoccluded silhouette is
   ``depth < NO_SURFACE_DEPTH``. Occlusion is a depth test on the server,
   never baked in here. ``character_pass="cycles"`` renders it with Cycles
   instead (one sample, tiny pixel filter): the reference the tests compare
   with, and the path for panoramic cameras.

Every scene setting touched is recorded and restored by ``PassRenderer.close``.
"""
from __future__ import annotations

import os
import time

import bpy
import numpy as np

from .. import compat
from ..core import bmp, conventions, exr
from ..core.conventions import has_surface
from . import raster
from .changes import ChangeTracker



def read_png_rgb(path: str) -> np.ndarray:
    """uint8 [H, W, 3], top row first, via Blender's own image loader."""
    return np.ascontiguousarray(read_image_rgba(path)[..., :3])


_last_read: dict = {}  # (path, mtime_ns, size) -> pixels of the last image read


def read_image_rgba(path: str) -> np.ndarray:
    """Any image Blender can read -> uint8 [H, W, 4] (for the reference image).

    Colour-managed float images are not converted: the reference is expected
    to be an 8-bit sRGB picture of the character. The last file read is kept
    (by path, modification time and size): loading an image adds and removes a
    datablock, which in a window redraws editors and rebuilds the depsgraph, and
    every Animate reads the same reference.
    """
    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    if key is not None and key in _last_read:
        return _last_read[key].copy()
    pixels = _load_image_rgba(path)
    _last_read.clear()
    if key is not None:
        _last_read[key] = pixels.copy()
    return pixels


def _load_image_rgba(path: str) -> np.ndarray:
    img = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = img.size
        if w == 0 or h == 0:
            raise ValueError(f"{path!r} could not be decoded")
        buf = np.empty(w * h * img.channels, np.float32)
        img.pixels.foreach_get(buf)
        px = buf.reshape(h, w, img.channels)[::-1]
        if img.channels == 3:
            px = np.concatenate([px, np.ones_like(px[..., :1])], axis=2)
        elif img.channels == 1:
            px = np.concatenate([np.repeat(px, 3, axis=2), np.ones_like(px)], axis=2)
        return np.ascontiguousarray(np.clip(np.rint(px * 255.0), 0, 255).astype(np.uint8))
    finally:
        bpy.data.images.remove(img)


class PassRenderer:
    """Owns the temporary scene state of one shot's pass renders."""

    def __init__(self, scene, *, body_objects, labelled_objects, width, height, samples, workdir,
                 denoise: bool | None = None, reuse: bool = True, character_pass: str = "raster"):
        self.scene = scene
        self.body = list(body_objects)
        self.labelled = list(labelled_objects)
        self.width, self.height = width, height
        self.samples = samples
        self.denoise = denoise  # None: the scene's own setting
        self.workdir = workdir
        if character_pass not in ("raster", "cycles"):
            raise ValueError(f"character_pass must be 'raster' or 'cycles', got {character_pass!r}")
        self.character_pass = character_pass
        # The Cycles character pass toggles visibility per frame, which marks
        # everything changed: no reuse with it.
        self.reuse = reuse and character_pass == "raster"
        self.renders = 0   # environment renders made
        self.reused = 0    # frames that reused the previous environment render
        self.last_reason: str | None = None
        # Seconds spent, for the benchmark: the Cycles render call, saving and reading its files, the z-buffer.
        self.seconds = {"render": 0.0, "files": 0.0, "raster": 0.0}
        os.makedirs(workdir, exist_ok=True)
        self._saved: list = []  # (owner name, attribute, old value) to replay in reverse
        self.notes: list[str] = []  # what the user should know about how the passes were made
        self._cache: tuple | None = None
        self._open()

    # -- settings, with undo ------------------------------------------------------
    def _set(self, owner: str, attr: str, value):
        """Set ``scene.<owner>.<attr>``, remembering the old value. The owner is kept by name and looked
        up again on restore: ``scene.cycles`` is gone (and its old struct unsafe) once Cycles is disabled."""
        target = getattr(self.scene, owner)
        old = getattr(target, attr)
        if old != value:
            self._saved.append((owner, attr, old))
            setattr(target, attr, value)

    def _open(self):
        """Record every setting first, then change them: a failure part-way is undone by ``close``."""
        sc, r = self.scene, self.scene.render
        self._frame = sc.frame_current
        self._image_format = compat.image_format_state(r.image_settings)
        self._user_samples = sc.cycles.samples
        self._user_filter = sc.cycles.filter_width
        self._user_denoise = sc.cycles.use_denoising
        self._view_layer_flags = [(vl, vl.use_pass_z, vl.use_pass_object_index, vl.use) for vl in sc.view_layers]
        self._pass_index = [(o, o.pass_index) for o in sc.objects]
        self._hide = [(o, o.hide_render) for o in sc.objects]
        try:
            self._change_settings()
        except BaseException:
            self.close()
            raise

    def _change_settings(self):
        sc = self.scene
        self._set("render", "engine", "CYCLES")
        self._set("render", "resolution_x", self.width)
        self._set("render", "resolution_y", self.height)
        self._set("render", "resolution_percentage", 100)
        self._set("render", "pixel_aspect_x", 1.0)
        self._set("render", "pixel_aspect_y", 1.0)
        self._set("render", "use_border", False)
        self._set("render", "film_transparent", False)
        # With strips on the sequencer (earlier takes!) a render would return the
        # sequencer's picture, and a user compositor would alter the passes.
        self._set("render", "use_sequencer", False)
        self._set("render", "use_compositing", False)
        # Only one view layer renders (several would multiply the cost): the
        # active one when it belongs to this scene.
        ctx_layer = getattr(bpy.context, "view_layer", None)
        active = ctx_layer if ctx_layer is not None and ctx_layer.name in sc.view_layers \
            and bpy.context.scene == sc else sc.view_layers[0]
        for vl in sc.view_layers:
            vl.use = vl == active
        self.view_layer = active
        self.view_layer.use_pass_z = True
        self.view_layer.use_pass_object_index = True
        # Object Index carries the tagged-object labels; everything else 0.
        labels = {o.name: i + 1 for i, o in enumerate(self.labelled)}
        for o in sc.objects:
            o.pass_index = labels.get(o.name, 0)
        # Environment settings, set once for the whole shot.
        sc.cycles.samples = self.samples
        if self.denoise is not None:
            self._set_denoise(sc.cycles)
        self._env_denoise = sc.cycles.use_denoising
        body_names = {o.name for o in self.body}
        for o, hidden in self._hide:
            o.hide_render = hidden or o.name in body_names or bool(o.get("inhabit_proxy"))
        self.tracker = None
        if self.reuse:
            self.tracker = ChangeTracker(sc, self.view_layer, self._character_ids())
            self.tracker.start()

    def _set_denoise(self, cycles) -> None:
        """Denoise with OpenImageDenoise when the running Cycles offers it (distribution builds and some
        platforms lack it); otherwise render without denoising and say so in ``notes``."""
        if not self.denoise:
            cycles.use_denoising = False
            return
        if "OPENIMAGEDENOISE" not in compat.cycles_denoisers(self.scene):
            cycles.use_denoising = False
            self.notes.append(f"This Blender's Cycles has no OpenImageDenoise, so the environment pass renders "
                              f"without denoising at {self.samples} samples: raise Samples for a cleaner plate.")
            return
        cycles.use_denoising = True
        self._set("cycles", "denoiser", "OPENIMAGEDENOISE")
        # The fast prefilter skips denoising the albedo and normal guides: at
        # 512 px it cut OIDN from ~4 s to ~1 s for under 1 dB (bench/RESULTS.md).
        self._set("cycles", "denoising_prefilter", "FAST")

    def _character_ids(self) -> list:
        """Datablocks only the character uses: their changes never show in the environment."""
        ids = []
        body = set(self.body) | {o for o in self.scene.objects if o.get("inhabit_proxy")}
        for o in body:
            ids.append(o)
            if o.data is not None and all(u in body for u in self.scene.objects if u.data == o.data):
                ids.append(o.data)
                key = getattr(o.data, "shape_keys", None)
                if key is not None:
                    ids.append(key)
        others = {s.material for o in self.scene.objects if o not in body for s in o.material_slots if s.material}
        for o in body:
            ids.extend(s.material for s in o.material_slots if s.material and s.material not in others)
        return ids

    def close(self):
        """Put back everything ``_open`` recorded (also after it failed part-way); safe to call twice."""
        sc = self.scene
        if getattr(self, "tracker", None) is not None:
            self.tracker.stop()
            self.tracker = None
        for o, v in self._hide:
            o.hide_render = v
        for o, v in self._pass_index:
            o.pass_index = v
        for vl, z, idx, use in self._view_layer_flags:
            vl.use_pass_z, vl.use_pass_object_index, vl.use = z, idx, use
        if hasattr(sc, "cycles"):  # gone when the Cycles add-on was disabled (factory settings loading)
            sc.cycles.samples = self._user_samples
            sc.cycles.filter_width = self._user_filter
            sc.cycles.use_denoising = self._user_denoise
        compat.restore_image_format(sc.render.image_settings, self._image_format)
        for owner, attr, old in reversed(self._saved):
            target = getattr(sc, owner, None)
            if target is not None:  # None: it went away with the Cycles add-on, nothing left to put back
                setattr(target, attr, old)
        self._saved.clear()
        sc.frame_set(self._frame)

    # -- rendering -------------------------------------------------------------------
    def _render(self, outputs: dict) -> None:
        t0 = time.perf_counter()
        wm = bpy.context.window_manager
        if bpy.context.window is None and wm is not None and wm.windows:
            # GUI timer callbacks run without a window in the context; give the operator one.
            with bpy.context.temp_override(window=wm.windows[0], scene=self.scene):
                bpy.ops.render.render(write_still=False, scene=self.scene.name)
        else:
            bpy.ops.render.render(write_still=False, scene=self.scene.name)
        t1 = time.perf_counter()
        self.seconds["render"] += t1 - t0
        result = bpy.data.images["Render Result"]
        settings = self.scene.render.image_settings
        for kind, path in outputs.items():
            compat.set_image_format(settings, kind)
            result.save_render(filepath=path, scene=self.scene)
        self.seconds["files"] += time.perf_counter() - t1

    def _render_environment(self) -> tuple:
        layer = self.view_layer.name
        env_bmp = os.path.join(self.workdir, "environment.bmp")
        env_exr = os.path.join(self.workdir, "environment.exr")
        self._render({"bmp": env_bmp, "exr": env_exr})
        t = time.perf_counter()
        environment = bmp.read_bmp_rgb(env_bmp)
        wanted = {f"{layer}.{p}{c}" for p in ("Depth", compat.OBJECT_INDEX_PASS) for c in ("", ".Z", ".X")}
        ch = exr.read_exr(env_exr, only=wanted)  # not the 4 MiB of Combined nobody reads
        self.seconds["files"] += time.perf_counter() - t
        scene_depth = exr.find_channel(ch, layer, "Depth", "Z")
        index = exr.find_channel(ch, layer, compat.OBJECT_INDEX_PASS, "X")
        return environment, scene_depth, index

    def _cycles_character_depth(self) -> np.ndarray:
        """The body alone, one sample at the pixel centre: the geometric silhouette and exact depth."""
        sc = self.scene
        body_names = {o.name for o in self.body}
        for o, _hidden in self._hide:
            o.hide_render = o.name not in body_names
        sc.cycles.samples = 1
        sc.cycles.filter_width = 0.01
        sc.cycles.use_denoising = False
        char_exr = os.path.join(self.workdir, "character.exr")
        try:
            self._render({"exr": char_exr})
        finally:
            for o, hidden in self._hide:
                o.hide_render = hidden or o.name in body_names or bool(o.get("inhabit_proxy"))
            sc.cycles.samples = self.samples
            sc.cycles.filter_width = self._user_filter
            sc.cycles.use_denoising = self._env_denoise
        return exr.find_channel(exr.read_exr(char_exr), self.view_layer.name, "Depth", "Z")

    def render_frame(self, frame: int) -> dict:
        """The passes of ``frame``; return the FRAME_INPUTS image arrays."""
        sc = self.scene
        if self.tracker is not None:
            self.tracker.begin_frame()
        sc.frame_set(frame)
        depsgraph = self.view_layer.depsgraph
        reason = self.tracker.changed(depsgraph) if self.tracker is not None else "reuse is off"
        self.last_reason = reason
        if reason is None:
            self.reused += 1
            self.tracker.reused()
        else:
            if self.tracker is not None:
                self.tracker.paused = True  # switching file formats to save is not a scene change
            try:
                self._cache = self._render_environment()
            finally:
                if self.tracker is not None:
                    self.tracker.paused = False
            self.renders += 1
            if self.tracker is not None:
                self.tracker.rendered(depsgraph)
        environment, scene_depth, index = self._cache

        camera = sc.camera
        # The z-buffer is exact for opaque bodies seen through ordinary lenses; otherwise render.
        if self.character_pass == "raster" and raster.supported_camera(camera) and raster.opaque(self.body):
            t = time.perf_counter()
            char_depth = raster.objects_depth(sc, depsgraph, camera, self.body, self.width, self.height)
            self.seconds["raster"] += time.perf_counter() - t
        else:
            if self.tracker is not None:
                self.tracker.paused = True  # visibility is toggled and put back: no change to the scene
            try:
                char_depth = self._cycles_character_depth()
            finally:
                if self.tracker is not None:
                    self.tracker.paused = False
        return finish_arrays(environment.copy(), scene_depth, char_depth, index, len(self.labelled))


def finish_arrays(environment, scene_depth, char_depth, index, n_labels) -> dict:
    """Raw pass planes -> protocol arrays (dtype, range and 'no surface' fixed)."""
    def clean_depth(d):
        d = np.where(np.isfinite(d) & (d > 0) & has_surface(d), d, conventions.NO_SURFACE_DEPTH)
        return np.ascontiguousarray(d, dtype=np.float32)
    char_depth = clean_depth(char_depth)
    labels = np.rint(index).astype(np.int64)
    labels[(labels < 0) | (labels > n_labels)] = 0
    return {
        "environment": environment,
        "character_mask": np.where(has_surface(char_depth), 255, 0).astype(np.uint8),
        "character_depth": char_depth,
        "scene_depth": clean_depth(scene_depth),
        "object_labels": labels.astype(np.uint8),
    }
