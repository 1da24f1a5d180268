"""Small bpy builders the headless-Blender tools share: materials, boxes, ellipsoid
limbs, linking into a collection, posing a bone about a rest-space axis.

Used by the demo scene, the training-clip generator and the tests' scenes.
"""
from __future__ import annotations

import bpy  # first: bmesh and mathutils come with it
import bmesh
from mathutils import Matrix, Quaternion, Vector


def material(name: str, colour) -> bpy.types.Material:
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = (*colour, 1.0)
    if mat.node_tree is None:
        mat.use_nodes = True  # older Blender; 5.0 creates the node tree itself
    bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.7
    return mat


def link(obj, collection):
    collection.objects.link(obj)
    return obj


def mesh_object(name, bm, material, collection):
    me = bpy.data.meshes.new(name)
    bm.to_mesh(me)
    bm.free()
    for poly in me.polygons:
        poly.use_smooth = True
    me.materials.append(material)
    return link(bpy.data.objects.new(name, me), collection)


def box(name, centre, size, material, collection):
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    bmesh.ops.transform(bm, matrix=Matrix.Translation(centre) @ Matrix.Diagonal((*size, 1.0)), verts=bm.verts)
    obj = mesh_object(name, bm, material, collection)
    for poly in obj.data.polygons:
        poly.use_smooth = False
    return obj


def ellipsoid(p0, p1, radius, depth_scale=1.0, overlap=0.35):
    """bmesh of an ellipsoid spanning p0..p1 (extended by ``overlap`` radii so
    neighbouring limbs overlap at joints instead of showing gaps)."""
    p0, p1 = Vector(p0), Vector(p1)
    axis = p1 - p0
    half = axis.length / 2 + overlap * radius
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=14, v_segments=8, radius=1.0)
    rot = axis.normalized().to_track_quat("Z", "Y").to_matrix().to_4x4()
    scale = Matrix.Diagonal((radius, radius * depth_scale, half, 1.0))
    bmesh.ops.transform(bm, matrix=Matrix.Translation((p0 + p1) / 2) @ rot @ scale, verts=bm.verts)
    return bm


def swing(arm, bone_name: str, axis, angle: float) -> Quaternion:
    """Pose rotation (bone-local quaternion) that rotates bone ``bone_name`` by
    ``angle`` about ``axis`` given in the armature's rest space, relative to its parent."""
    rest = arm.data.bones[bone_name].matrix_local.to_3x3()
    r = Matrix.Rotation(angle, 3, Vector(axis))
    return (rest.inverted() @ r @ rest).to_quaternion()
