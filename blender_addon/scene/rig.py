"""The armature as the mapping core sees it, and what it drives (bpy).

Only extraction lives here: bone names, parents, rest heads/tails in the
armature's own space and deform flags go to ``core.rig_map``; posed joints
come back as world positions. Also: which objects make up the character
(meshes bound by an Armature modifier or parented to the armature or one of
its bones, with their own children), and which armature a scene's character is.
"""
from __future__ import annotations

import bpy
from mathutils import Matrix, Vector

from ..core import rig_map, rig_surface
from ..core.settings import SetupError

RENDERABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES"}


def rig_bones(armature) -> list:
    return [rig_map.Bone(b.name, b.parent.name if b.parent else None, tuple(b.head_local), tuple(b.tail_local),
                         bool(b.use_deform))
            for b in armature.data.bones]


def map_armature(armature, user_mapping=None, scene=None) -> rig_map.RigMap:
    """The keypoint map of ``armature`` (raises keypoint_map.MappingError): the rig's joints, its
    face fitted to the head's geometry, and where an estimator would see each point on the
    skinned mesh (``core.rig_surface``)."""
    rm = rig_map.map_rig(rig_bones(armature), user_mapping, armature_name=armature.name)
    skin, accessories, has_mesh, eyes = skinned_vertices(armature, scene or bpy.context.scene)
    if rm.head_frame is not None:
        head = rm.head_frame[0]
        under = {head} | {b.name for b in armature.data.bones[head].children_recursive}
        rig_map.fit_head(rm, [p for b in under for p in skin.get(b, ())])
    rig_surface.fit_surface(rm, skin, accessories, has_mesh=has_mesh, eyes=eyes)
    return rm


MAX_VERTICES_READ = 60000  # per mesh: enough to find a head's extent, bounded time on dense meshes


def _to_armature(obj, armature):
    """``obj``'s matrix into the armature's space: through the parent chain when it hangs under the
    armature (exact, whatever frame the armature is posed at), else through world space."""
    m = Matrix.Identity(4)
    p = obj
    while p is not None and p != armature:
        if p.parent_type != "OBJECT":
            return armature.matrix_world.inverted() @ obj.matrix_world
        m = p.matrix_parent_inverse @ p.matrix_basis @ m
        p = p.parent
    return m if p == armature else armature.matrix_world.inverted() @ obj.matrix_world


def skinned_vertices(armature, scene) -> tuple[dict, dict, bool, list]:
    """Rest-pose vertices (armature space) of the meshes the armature deforms, by the bone that
    mostly carries each (weight >= 0.5), or by the bone a mesh is parented to: ({bone: [points]}
    for the body, the same for accessories -- hair, hats, lashes, by bone, object or material
    name -- whether any mesh is driven at all, and [(bone, points)] of eye meshes)."""
    skin: dict = {}
    acc: dict = {}
    eyes: list = []
    try:
        objs = [o for o in driven_objects(scene, armature) if o.type == "MESH"]
    except SetupError:
        return skin, acc, False, eyes
    bones = armature.data.bones
    for obj in objs:
        m = _to_armature(obj, armature)
        verts = obj.data.vertices
        step = max(1, len(verts) // MAX_VERTICES_READ)
        obj_acc = rig_surface.is_accessory(obj.name)
        mats = [mat.name if mat else "" for mat in obj.data.materials]
        mat_acc = [rig_surface.is_accessory(n) for n in mats]
        vert_acc = set()
        if any(mat_acc) and not all(mat_acc):
            for poly in obj.data.polygons:
                if poly.material_index < len(mat_acc) and mat_acc[poly.material_index]:
                    vert_acc.update(poly.vertices)
        whole_acc = obj_acc or (bool(mat_acc) and all(mat_acc))
        if rig_surface.is_eye(obj.name) or (mats and all(rig_surface.is_eye(n) for n in mats)):
            into_eye = eyes
        else:
            into_eye = None
        if armature in _modifier_armatures(obj):
            names = {g.index: g.name for g in obj.vertex_groups if g.name in bones}
            for i in range(0, len(verts), step):
                v = verts[i]
                best = max(((g.weight, g.group) for g in v.groups if g.group in names), default=None)
                if best is None or best[0] < 0.5:
                    continue
                bone = names[best[1]]
                if into_eye is not None:
                    into_eye.append((bone, [tuple(m @ v.co)]))
                    continue
                into = acc if whole_acc or i in vert_acc or rig_surface.is_accessory(bone) else skin
                into.setdefault(bone, []).append(tuple(m @ v.co))
        elif obj.parent == armature and obj.parent_type == "BONE" and obj.parent_bone in bones:
            if into_eye is not None:
                into_eye.append((obj.parent_bone, [tuple(m @ verts[i].co) for i in range(0, len(verts), step)]))
                continue
            into = acc if whole_acc or rig_surface.is_accessory(obj.parent_bone) else skin
            into.setdefault(obj.parent_bone, []).extend(tuple(m @ verts[i].co) for i in range(0, len(verts), step))
    return skin, acc, bool(objs), eyes


class PosedRig:
    """World positions of mapped points for the armature's current evaluated pose.

    A point rides on its bone: world = object @ pose matrix @ rest matrix⁻¹ @
    rest point, so points that are not bone heads (derived face points, box
    corners) follow the head exactly, and object transforms and scale (a
    centimetre FBX rig at 0.01) are applied once, here.
    """

    def __init__(self, armature, mapping: rig_map.RigMap):
        self.armature = armature
        self.mapping = mapping
        bones = {j.bone for j in mapping.joints.values() if j is not None}
        bones |= {j.bone for j in mapping.face_box}
        bones |= {j.bone for j in (mapping.face_centre, mapping.face_front) if j is not None}
        bones |= {j.bone for j in mapping.seen.values() if j is not None}
        self._rest_inv = {b: armature.data.bones[b].matrix_local.inverted() for b in bones}

    def world(self, joint: rig_map.Joint | None):
        if joint is None:
            return None
        pb = self.armature.pose.bones[joint.bone]
        return self.armature.matrix_world @ (pb.matrix @ (self._rest_inv[joint.bone] @ Vector(joint.point)))

    def points(self, names) -> list:
        """The rig's own joints (bone heads, derived face points)."""
        return [self.world(self.mapping.joints.get(n)) for n in names]

    def seen_points(self, names) -> list:
        """Where an estimator would see each point (``core.rig_surface``; None = absent)."""
        return [self.world(self.mapping.seen_joint(n)) for n in names]


# -- what the armature drives -----------------------------------------------------
def _modifier_armatures(obj) -> list:
    return [m.object for m in obj.modifiers if m.type == "ARMATURE" and m.object is not None]


def _attached(obj, armature) -> bool:
    p = obj
    while p is not None:
        if p.parent == armature:
            return True
        p = p.parent
    return False


def driven_objects(scene, armature) -> list:
    """The character's renderable objects, by name: meshes deformed by an
    Armature modifier on ``armature``, objects parented to it or to its bones
    (clothes, hair cards, props held in a hand) and their children. Proxy
    capsules and objects hidden from renders are left out.

    Raises SetupError when a mesh under the armature is bound to another one.
    """
    out = []
    for obj in scene.objects:
        if obj.type not in RENDERABLE or obj.get("inhabit_proxy") or obj.hide_render:
            continue
        mods = _modifier_armatures(obj)
        if armature in mods:
            out.append(obj)
        elif _attached(obj, armature):
            others = [a for a in mods if a != armature]
            if others:
                raise SetupError("body", f"Mesh {obj.name!r} is parented to {armature.name!r} but its Armature "
                                         f"modifier deforms it with {others[0].name!r}: point the modifier at "
                                         f"{armature.name!r}, or pick the body yourself.")
            out.append(obj)
    return sorted(out, key=lambda o: o.name)


def find_character_armature(scene):
    """The one armature of the scene that drives a character (or the only one).

    Raises SetupError naming the candidates when there are none or several.
    """
    arms = [o for o in scene.objects if o.type == "ARMATURE"]
    if not arms:
        raise SetupError("armature", f"Scene {scene.name!r} has no armature: add the character's rig, "
                                     "or import a rigged character.")
    if len(arms) == 1:
        return arms[0]
    driving = [a for a in arms if _drives_anything(scene, a)]
    if len(driving) == 1:
        return driving[0]
    names = ", ".join(repr(a.name) for a in (driving or arms))
    raise SetupError("armature", f"Scene {scene.name!r} has several candidate armatures ({names}): "
                                 "pick the character's armature (--armature NAME or the Inhabit panel).")


def _drives_anything(scene, armature) -> bool:
    try:
        return bool(driven_objects(scene, armature))
    except SetupError:
        return True
