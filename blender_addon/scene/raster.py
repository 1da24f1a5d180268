"""Depth and mask of given mesh objects from their evaluated triangles (bpy layer).

Takes the list of objects as input and knows nothing about how the body was
found, so body discovery can change freely. The z-buffer itself is
``core.zbuffer`` (bpy-free).
"""
from __future__ import annotations

import numpy as np

from ..core import zbuffer


def supported_camera(camera) -> bool:
    """Perspective and orthographic cameras; panoramic ones need the path tracer."""
    return camera.data.type in {"PERSP", "ORTHO"}


def _material_may_be_transparent(mat) -> bool:
    tree = getattr(mat, "node_tree", None)
    if tree is None:
        return False
    for node in tree.nodes:
        if node.bl_idname in ("ShaderNodeBsdfTransparent", "ShaderNodeHoldout"):
            return True
        alpha = node.inputs.get("Alpha") if node.bl_idname == "ShaderNodeBsdfPrincipled" else None
        if alpha is not None and (alpha.is_linked or alpha.default_value < 1.0):
            return True
    return False


def opaque(objects) -> bool:
    """Whether every material of ``objects`` is certainly opaque. Triangles know
    nothing of alpha (hair cards, cut-out clothes): for those the renderer's own
    pass is the exact one, so the caller falls back to it."""
    for obj in objects:
        for slot in getattr(obj, "material_slots", ()):
            if slot.material is not None and _material_may_be_transparent(slot.material):
                return False
    return True


def camera_space_triangles(objects, depsgraph, view_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All evaluated triangles of ``objects`` (modifiers, shape keys, armature applied)
    as (points [N, 3] in camera space, triangles [T, 3])."""
    points, tris, base = [], [], 0
    for obj in objects:
        ev = obj.evaluated_get(depsgraph)
        try:
            mesh = ev.to_mesh()
        except RuntimeError:
            continue
        try:
            if mesh is None or not len(mesh.vertices):
                continue
            mesh.calc_loop_triangles()
            co = np.empty(len(mesh.vertices) * 3, np.float32)
            mesh.vertices.foreach_get("co", co)
            tri = np.empty(len(mesh.loop_triangles) * 3, np.int32)
            mesh.loop_triangles.foreach_get("vertices", tri)
            m = view_matrix @ np.asarray(ev.matrix_world, np.float64)
            p = co.reshape(-1, 3).astype(np.float64) @ m[:3, :3].T + m[:3, 3]
            points.append(p)
            tris.append(tri.reshape(-1, 3).astype(np.int64) + base)
            base += len(p)
        finally:
            ev.to_mesh_clear()
    if not points:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    return np.concatenate(points), np.concatenate(tris)


def objects_depth(scene, depsgraph, camera, objects, width: int, height: int) -> np.ndarray:
    """Planar camera depth [H, W] float32 of ``objects`` alone, ``inf`` where none is hit:
    what a one-sample render of only these objects gives at each pixel centre."""
    cam = camera.evaluated_get(depsgraph)
    view = np.linalg.inv(np.asarray(cam.matrix_world, np.float64))
    projection = np.asarray(cam.calc_matrix_camera(depsgraph, x=width, y=height,
                                                   scale_x=scene.render.pixel_aspect_x,
                                                   scale_y=scene.render.pixel_aspect_y), np.float64)
    points, tris = camera_space_triangles(objects, depsgraph, view)
    return zbuffer.rasterise_depth(points, tris, projection, width, height, cam.data.clip_start,
                                   ortho=cam.data.type == "ORTHO")
