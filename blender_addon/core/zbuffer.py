"""A numpy z-buffer: triangles in camera space -> per-pixel planar depth (bpy-free).

The character's mask and depth are its own geometry seen from the camera, so
they need no path tracer: each pixel centre takes the nearest triangle that
covers it, which is exactly what a one-sample, zero-width-filter Cycles render
of the body alone returns (checked against Cycles in tests/test_raster.py).

Work is vectorised over (triangle, pixel) pairs inside each triangle's
bounding box, in chunks so memory stays bounded for large meshes.
"""
from __future__ import annotations

import numpy as np

# (triangle, pixel) candidate pairs handled at once: ~40 MB of temporaries.
_CHUNK_PAIRS = 1 << 20
# A pixel centre exactly on a shared edge belongs to both triangles; the small
# slack keeps float rounding from opening one-pixel cracks along edges.
_EDGE_EPS = 1e-7


def rasterise_depth(cam_points: np.ndarray, triangles: np.ndarray, projection: np.ndarray,
                    width: int, height: int, near: float, *, ortho: bool = False) -> np.ndarray:
    """Planar depth [H, W] float32 (top row first), ``inf`` where no triangle covers the pixel centre.

    ``cam_points``: float [N, 3] in camera space (Blender: the camera looks down -Z);
    ``triangles``: int [T, 3] indices; ``projection``: 4x4 camera -> clip matrix
    (``Object.calc_matrix_camera``); ``near``: clip start -- triangles that reach
    in front of it are dropped, as Cycles clips them too.
    """
    depth = np.full(height * width, np.inf, np.float64)
    if len(triangles) == 0:
        return depth.reshape(height, width).astype(np.float32)
    p = np.asarray(cam_points, np.float64)
    tri = np.asarray(triangles, np.int64)
    z = -p[:, 2]  # planar depth, positive in front of the camera
    clip = np.c_[p, np.ones(len(p))] @ np.asarray(projection, np.float64).T
    w = clip[:, 3]
    ok_vert = z > near
    keep = ok_vert[tri].all(axis=1)
    tri = tri[keep]
    if len(tri) == 0:
        return depth.reshape(height, width).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[:, :2] / w[:, None]
    # Pixel coordinates with the origin at the top-left corner; centres at +0.5.
    sx = (ndc[:, 0] + 1.0) * 0.5 * width
    sy = (1.0 - ndc[:, 1]) * 0.5 * height
    # Perspective: 1/z is affine in screen space; orthographic: z itself is.
    q = z if ortho else 1.0 / z

    x0, y0, q0 = sx[tri[:, 0]], sy[tri[:, 0]], q[tri[:, 0]]
    x1, y1, q1 = sx[tri[:, 1]], sy[tri[:, 1]], q[tri[:, 1]]
    x2, y2, q2 = sx[tri[:, 2]], sy[tri[:, 2]], q[tri[:, 2]]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    xs = np.stack([x0, x1, x2], 1)
    ys = np.stack([y0, y1, y2], 1)
    # Pixels whose centre (i + 0.5) can lie inside the box.
    ix0 = np.clip(np.ceil(xs.min(1) - 0.5), 0, width).astype(np.int64)
    ix1 = np.clip(np.floor(xs.max(1) - 0.5) + 1, 0, width).astype(np.int64)
    iy0 = np.clip(np.ceil(ys.min(1) - 0.5), 0, height).astype(np.int64)
    iy1 = np.clip(np.floor(ys.max(1) - 0.5) + 1, 0, height).astype(np.int64)
    bw, bh = ix1 - ix0, iy1 - iy0
    live = (bw > 0) & (bh > 0) & (np.abs(area) > 1e-12)
    idx = np.nonzero(live)[0]
    counts = (bw * bh)[idx]

    start = 0
    while start < len(idx):
        # Take triangles until the chunk holds about _CHUNK_PAIRS pairs.
        csum = np.cumsum(counts[start:])
        stop = start + max(1, int(np.searchsorted(csum, _CHUNK_PAIRS, side="right")))
        t = idx[start:stop]
        n = counts[start:stop]
        start = stop
        owner = np.repeat(np.arange(len(t)), n)
        first = np.repeat(np.cumsum(n) - n, n)
        local = np.arange(owner.size) - first
        tt = t[owner]
        px = ix0[tt] + local % bw[tt]
        py = iy0[tt] + local // bw[tt]
        cx, cy = px + 0.5, py + 0.5
        inv = 1.0 / area[tt]
        # Barycentric weights of the pixel centre (edge functions / area).
        b0 = ((x1[tt] - cx) * (y2[tt] - cy) - (x2[tt] - cx) * (y1[tt] - cy)) * inv
        b1 = ((x2[tt] - cx) * (y0[tt] - cy) - (x0[tt] - cx) * (y2[tt] - cy)) * inv
        b2 = 1.0 - b0 - b1
        inside = (b0 >= -_EDGE_EPS) & (b1 >= -_EDGE_EPS) & (b2 >= -_EDGE_EPS)
        if not inside.any():
            continue
        tt, b0, b1, b2 = tt[inside], b0[inside], b1[inside], b2[inside]
        qq = b0 * q0[tt] + b1 * q1[tt] + b2 * q2[tt]
        d = qq if ortho else 1.0 / qq
        np.minimum.at(depth, py[inside] * width + px[inside], d)
    return depth.reshape(height, width).astype(np.float32)
