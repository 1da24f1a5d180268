"""Has anything the environment render depends on changed since it was made?

The depsgraph says which datablocks it re-evaluated (``depsgraph.updates``,
seen from the ``frame_change_post`` and ``depsgraph_update_post`` handlers).
Those are candidates, not changes: an animated object is re-evaluated on every
frame even where its curve is flat. So each candidate outside the character
gets a fingerprint of the state a render sees (evaluated matrix, visibility
flags, evaluated geometry, data and shader node values), compared with its
fingerprint when the cached render was made. Render settings (seed, samples,
motion blur, colour management, camera and world choice) are fingerprinted on
every frame, whatever the depsgraph says.

When in doubt it says "render": a datablock type it cannot fingerprint, a
candidate first seen after the render, a frame change whose handler did not
run for our view layer, motion blur or an animated seed, image sequences and
movies, or objects that render but are disabled in the viewport (the view
layer's depsgraph does not evaluate those, so their animation is not seen).
"""
from __future__ import annotations

import hashlib

import bpy
import numpy as np

# Datablock types a fingerprint covers (subclasses too: a sun is a SunLight); an
# update of any other type means "render".
_DATA_TYPES = tuple(getattr(bpy.types, n) for n in ("Camera", "Light", "World", "Material", "ShaderNodeTree",
                                                      "Key", "Mesh", "Curve"))
# Updated by rendering itself or by bookkeeping that no render reads.
_IGNORED_TYPES = {"Action", "Armature", "Scene", "Screen", "WindowManager", "Workspace", "Text"}
# Bookkeeping, or deprecated (reading warns) and mirrored by the node tree.
_NEVER_READ = {"rna_type", "use_nodes", "is_evaluated", "original", "session_uid", "users", "is_missing"}
_OUTPUT_FIELDS = ("image_settings", "ffmpeg", "filepath", "use_sequencer", "use_compositing")
_IGNORED_IMAGES = {"Render Result", "Viewer Node"}
# Object fields Cycles reads besides the evaluated matrix and geometry.
_OBJECT_FIELDS = ("hide_render", "visible_camera", "visible_diffuse", "visible_glossy", "visible_transmission",
                  "visible_volume_scatter", "visible_shadow", "is_holdout", "is_shadow_catcher", "pass_index",
                  "color", "display_type", "instance_type", "type")


def _plain(value):
    """RNA value -> something comparable with ==."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(value))
    if isinstance(value, bpy.types.ID):
        return ("ID", value.name)
    try:
        return tuple(_plain(v) for v in value)
    except TypeError:
        return repr(value)


def rna_state(struct, depth: int = 1, skip=()) -> tuple:
    """Every plain property of ``struct`` (and of its nested non-ID structs, ``depth`` deep)."""
    out = []
    for prop in struct.bl_rna.properties:
        ident = prop.identifier
        if ident in _NEVER_READ or ident in skip:
            continue
        if prop.type in {"BOOLEAN", "INT", "FLOAT", "STRING", "ENUM"}:
            try:
                out.append((ident, _plain(getattr(struct, ident))))
            except (AttributeError, TypeError, ValueError):
                out.append((ident, "?"))
        elif prop.type == "POINTER":
            try:
                value = getattr(struct, ident)
            except (AttributeError, TypeError):
                continue
            if value is None:
                out.append((ident, None))
            elif isinstance(value, bpy.types.ID):
                out.append((ident, ("ID", value.name)))
            elif depth > 0:
                out.append((ident, rna_state(value, depth - 1)))
    return tuple(out)


def node_tree_state(tree) -> tuple:
    if tree is None:
        return ()
    nodes = tuple((n.name, rna_state(n, 0),
                   tuple(_plain(getattr(s, "default_value", None)) for s in n.inputs))
                  for n in tree.nodes)
    links = tuple((lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier,
                   lk.is_muted) for lk in tree.links)
    return nodes, links


def geometry_digest(obj_eval) -> str | None:
    """Hash of the evaluated geometry and its material slots; None when it cannot be read."""
    try:
        mesh = obj_eval.to_mesh()
    except RuntimeError:
        return None
    try:
        if mesh is None:
            return "empty"
        h = hashlib.blake2b(digest_size=16)
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        h.update(co.tobytes())
        polys = np.empty(len(mesh.polygons) * 2, np.int32)
        if len(mesh.polygons):
            mesh.polygons.foreach_get("loop_start", polys[0::2])
            mesh.polygons.foreach_get("material_index", polys[1::2])
        h.update(polys.tobytes())
        loops = np.empty(len(mesh.loops), np.int32)
        mesh.loops.foreach_get("vertex_index", loops)
        h.update(loops.tobytes())
        h.update(repr([m.name if m else None for m in mesh.materials]).encode())
        return h.hexdigest()
    finally:
        obj_eval.to_mesh_clear()


def object_state(obj_eval) -> tuple | None:
    fields = tuple(_plain(getattr(obj_eval, f, None)) for f in _OBJECT_FIELDS)
    mats = tuple((s.link, s.material.name if s.material else None) for s in obj_eval.material_slots)
    geometry = None
    if obj_eval.type in {"MESH", "CURVE", "SURFACE", "FONT", "META"}:
        geometry = geometry_digest(obj_eval)
        if geometry is None:
            return None
    elif obj_eval.type not in {"EMPTY", "CAMERA", "LIGHT", "LIGHT_PROBE", "ARMATURE", "SPEAKER"}:
        return None  # volumes, point clouds, grease pencil, curves (new): no fingerprint
    return _plain(obj_eval.matrix_world), fields, mats, geometry


def data_state(id_eval) -> tuple | None:
    kind = type(id_eval).__name__
    tree = getattr(id_eval, "node_tree", None)
    if isinstance(id_eval, bpy.types.NodeTree):
        return ("tree", node_tree_state(id_eval))
    if kind == "Key":
        return ("key", tuple((kb.name, kb.value, kb.mute) for kb in id_eval.key_blocks))
    return (kind, rna_state(id_eval, 1), node_tree_state(tree))


def settings_state(scene) -> tuple:
    """The scene-level settings a render reads, taken on every frame."""
    # Output settings are not the picture: the passes set the file format per save.
    cycles = rna_state(scene.cycles, 0) if hasattr(scene, "cycles") else ()
    return (rna_state(scene.render, 1, skip=_OUTPUT_FIELDS), cycles,
            rna_state(scene.view_settings, 0), rna_state(scene.display_settings, 0),
            scene.camera.name if scene.camera else None, scene.world.name if scene.world else None)


class ChangeTracker:
    """Decides per frame whether the cached environment render is still the scene's.

    ``character``: datablocks whose changes the environment never sees (the
    body's objects, meshes and materials, the armature, the proxy capsules).
    Call ``start()`` after the scene is set up for rendering, then per frame,
    after ``frame_set``: ``reason = changed(depsgraph)``; ``None`` means reuse.
    After rendering: ``rendered(depsgraph)``.
    """

    def __init__(self, scene, view_layer, character: list):
        self.scene, self.view_layer = scene, view_layer
        self.character = {c.as_pointer() for c in character if c is not None}
        self.pending: dict[int, object] = {}  # as_pointer -> original ID
        self.saw_frame_change = False
        self.at_render: dict[int, object] = {}  # fingerprints when the cached render was made
        self.settings_at_render = None
        self.has_render = False
        self.paused = False  # set while the passes render and save: their own setting changes are no news
        self.always = self._always_render_reason()
        self._handlers = ((bpy.app.handlers.frame_change_post, self._on_frame),
                          (bpy.app.handlers.depsgraph_update_post, self._on_update))

    # -- handlers ----------------------------------------------------------------
    def start(self):
        for lst, fn in self._handlers:
            lst.append(fn)

    def stop(self):
        for lst, fn in self._handlers:
            if fn in lst:
                lst.remove(fn)

    def _ours(self, depsgraph) -> bool:
        try:
            return depsgraph.scene == self.scene and depsgraph.view_layer == self.view_layer
        except ReferenceError:
            return False

    def _collect(self, depsgraph):
        if self.paused:
            return
        for u in depsgraph.updates:
            orig = u.id.original
            self.pending[orig.as_pointer()] = orig

    def _on_frame(self, scene, depsgraph=None):
        if depsgraph is not None and self._ours(depsgraph):
            self.saw_frame_change = True
            self._collect(depsgraph)

    def _on_update(self, scene, depsgraph=None):
        if depsgraph is not None and self._ours(depsgraph):
            self._collect(depsgraph)

    # -- decisions ----------------------------------------------------------------
    def _every_frame_reason(self) -> str | None:
        """Settings under which every frame differs; read per frame, as they may be animated or edited."""
        sc = self.scene
        if sc.render.use_motion_blur:
            return "motion blur is on"  # the frame shows the neighbouring times too
        if getattr(sc.cycles, "use_animated_seed", False):
            return "the seed is animated"
        return None

    def _always_render_reason(self) -> str | None:
        sc = self.scene
        for img in bpy.data.images:
            if img.source in {"SEQUENCE", "MOVIE"} and img.users:
                return f"image {img.name!r} is a sequence or movie"
        for obj in sc.objects:
            if obj.as_pointer() in self.character:
                continue
            hidden_coll = any(c.hide_viewport for c in obj.users_collection)
            if not obj.hide_render and (obj.hide_viewport or hidden_coll):
                return f"object {obj.name!r} renders but is disabled in the viewport"
        return None

    def _fingerprint(self, orig, depsgraph):
        try:
            ev = orig.evaluated_get(depsgraph)
        except (RuntimeError, ReferenceError, AttributeError):
            return None
        if isinstance(orig, bpy.types.Object):
            return object_state(ev)
        if isinstance(orig, _DATA_TYPES):
            return data_state(ev)
        return None

    def changed(self, depsgraph) -> str | None:
        """Why the environment must be rendered again for the current frame, or None to reuse."""
        if not self.has_render:
            return "no render yet"
        if self.always or self._every_frame_reason():
            return self.always or self._every_frame_reason()
        if not self.saw_frame_change:
            return "the frame change was not seen"
        if settings_state(self.scene) != self.settings_at_render:
            return "render settings changed"
        for key, orig in list(self.pending.items()):
            reason = self._check(key, orig, depsgraph)
            if reason:
                return reason
        return None

    def _check(self, key, orig, depsgraph) -> str | None:
        if key in self.character:
            return None
        kind = type(orig).__name__
        if kind in _IGNORED_TYPES or (kind == "Image" and orig.name in _IGNORED_IMAGES):
            return None
        if kind == "Object" and orig.type == "ARMATURE":
            return None  # never rendered; what it deforms or carries has updates of its own
        if key not in self.at_render:
            return f"{kind} {orig.name!r} changed"
        now = self._fingerprint(orig, depsgraph)
        if now is None or now != self.at_render[key]:
            return f"{kind} {orig.name!r} changed"
        return None

    def rendered(self, depsgraph):
        """The cached render is now of this frame: remember what it saw."""
        self.has_render = True
        self.settings_at_render = settings_state(self.scene)
        # Candidates of this frame are the animated datablocks: they will be
        # candidates again on every frame, so their state now is the reference.
        self.at_render = {}
        for key, orig in self.pending.items():
            if key in self.character:
                continue
            fp = self._fingerprint(orig, depsgraph)
            if fp is not None:
                self.at_render[key] = fp
        self.pending = {}

    def reused(self):
        """The cached render was kept: what was pending is known to be unchanged."""
        self.pending = {}

    def begin_frame(self):
        """Call before ``frame_set``; updates between frames (a user's edits) stay pending."""
        self.saw_frame_change = False
