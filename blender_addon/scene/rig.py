"""The armature as the mapping core sees it, and what it drives (bpy).

Only extraction lives here: bone names, parents, rest heads/tails in the
armature's own space and deform flags go to ``core.rig_map``; posed joints
come back as world positions. Also: which objects make up the character
(meshes bound by an Armature modifier or parented to the armature or one of
its bones, with their own children), and which armature a scene's character is.
"""
from __future__ import annotations

import bpy
from mathutils import Vector

from ..core import rig_map
from ..core.settings import SetupError

RENDERABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES"}


def rig_bones(armature) -> list:
    return [rig_map.Bone(b.name, b.parent.name if b.parent else None, tuple(b.head_local), tuple(b.tail_local),
                         bool(b.use_deform))
            for b in armature.data.bones]


def map_armature(armature, user_mapping=None, scene=None) -> rig_map.RigMap:
    """The keypoint map of ``armature`` (raises keypoint_map.MappingError),
    its face fitted to the head's geometry when a driven mesh is skinned to it."""
    rm = rig_map.map_rig(rig_bones(armature), user_mapping, armature_name=armature.name)
    if rm.head_frame is not None:
        rig_map.fit_head(rm, head_vertices(armature, rm.head_frame[0], scene or bpy.context.scene))
    return rm


MAX_VERTICES_READ = 60000  # per mesh: enough to find a head's extent, bounded time on dense meshes


def head_vertices(armature, head_bone: str, scene) -> list:
    """Rest-pose vertices (armature space) mostly weighted to the head bone or
    the bones under it (jaw, eyes, lids), over the meshes the armature deforms."""
    bone = armature.data.bones.get(head_bone)
    if bone is None:
        return []
    names = {head_bone} | {b.name for b in bone.children_recursive}
    try:
        meshes = [o for o in driven_objects(scene, armature) if o.type == "MESH" and armature in _modifier_armatures(o)]
    except SetupError:
        return []
    to_arm = armature.matrix_world.inverted()
    out = []
    for obj in meshes:
        groups = {g.index for g in obj.vertex_groups if g.name in names}
        if not groups:
            continue
        m = to_arm @ obj.matrix_world
        verts = obj.data.vertices
        step = max(1, len(verts) // MAX_VERTICES_READ)
        for i in range(0, len(verts), step):
            v = verts[i]
            if sum(g.weight for g in v.groups if g.group in groups) >= 0.5:
                out.append(tuple(m @ v.co))
    return out


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
        self._rest_inv = {b: armature.data.bones[b].matrix_local.inverted() for b in bones}

    def world(self, joint: rig_map.Joint | None):
        if joint is None:
            return None
        pb = self.armature.pose.bones[joint.bone]
        return self.armature.matrix_world @ (pb.matrix @ (self._rest_inv[joint.bone] @ Vector(joint.point)))

    def points(self, names) -> list:
        return [self.world(self.mapping.joints.get(n)) for n in names]


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
