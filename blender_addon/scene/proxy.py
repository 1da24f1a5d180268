"""A proxy body of capsules along the armature's deform bones.

Used when the user has only an armature: it gives the character a silhouette
and a depth in the scene. Each capsule is its own object parented to its bone
(so it follows the animation and stays editable), kept in one collection and
hidden from final renders; the passes un-hide it only for the character layer.
"""
from __future__ import annotations


import bmesh
import bpy
from mathutils import Matrix

PROXY_PREFIX = "Inhabit Proxy"


def proxy_collection_name(armature_name: str) -> str:
    return f"{PROXY_PREFIX}: {armature_name}"


def capsule_radius(length: float) -> float:
    # Thick enough to read as a body at small resolutions; thin bones (fingers,
    # end bones) get a floor so they do not vanish between pixels.
    return max(0.035, min(0.11, 0.28 * length))


def _capsule_mesh(name: str, length: float, radius: float, segments: int = 12) -> bpy.types.Mesh:
    """Capsule along -Y from the bone's tail (y = 0) to its head (y = -length).

    A bone-parented object sits at the bone's *tail*, hence the negative Y.
    """
    bm = bmesh.new()
    rings = segments // 2
    # A UV sphere whose two hemispheres are pulled apart along Y makes the capsule.
    bmesh.ops.create_uvsphere(bm, u_segments=segments, v_segments=rings, radius=radius)
    half = length / 2.0
    for v in bm.verts:
        # sphere poles are on Z: rotate Z -> Y, then stretch
        x, y, z = v.co.x, v.co.z, -v.co.y
        y += half if y >= 0 else -half
        v.co = (x, y - half, z)
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    return mesh


def ensure_proxy_body(scene: bpy.types.Scene, armature: bpy.types.Object) -> list:
    """Return the proxy capsule objects for ``armature``, creating them once."""
    coll_name = proxy_collection_name(armature.name)
    coll = bpy.data.collections.get(coll_name)
    if coll is not None and len(coll.objects):
        if coll.name not in scene.collection.children:
            scene.collection.children.link(coll)
        return list(coll.objects)
    if coll is None:
        coll = bpy.data.collections.new(coll_name)
        scene.collection.children.link(coll)
    bones = [b for b in armature.data.bones if b.use_deform and b.length > 1e-4]
    if not bones:
        bones = [b for b in armature.data.bones if b.length > 1e-4]
    objs = []
    # Radii are chosen in metres: a rig in centimetres or scaled 0.01 gets the same body.
    scale = armature.matrix_world.to_scale()
    s = (abs(scale.x * scale.y * scale.z) ** (1 / 3)) or 1.0
    for bone in bones:
        mesh = _capsule_mesh(f"{coll_name}:{bone.name}", bone.length, capsule_radius(bone.length * s) / s)
        obj = bpy.data.objects.new(f"Proxy {bone.name}", mesh)
        coll.objects.link(obj)
        obj.parent = armature
        obj.parent_type = "BONE"
        obj.parent_bone = bone.name
        obj.matrix_parent_inverse = Matrix.Identity(4)
        obj.matrix_basis = Matrix.Identity(4)
        obj.hide_render = True  # never in the user's final renders
        obj["inhabit_proxy"] = True
        objs.append(obj)
    return objs
