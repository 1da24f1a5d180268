"""Write 8-bit PNG frames with zlib only (no bpy, no cv2: neither is safe to
rely on in every Blender build and on a worker thread), atomically."""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, *, level: int = 3) -> bytes:
    """uint8 [H, W] / [H, W, 3] / [H, W, 4] (top row first) -> PNG bytes."""
    arr = np.ascontiguousarray(pixels)
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"PNG pixels must be [H, W], [H, W, 3] or [H, W, 4], got {list(pixels.shape)}")
    h, w, c = arr.shape
    color_type = {1: 0, 3: 2, 4: 6}[c]
    # Filter type 0 (None) on every row: a zero byte before each scanline.
    raw = np.zeros((h, 1 + w * c), np.uint8)
    raw[:, 1:] = arr.reshape(h, w * c)
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + _chunk(b"IEND", b""))


def write_png_atomic(path: str, pixels: np.ndarray) -> str:
    """Write to ``path + '.part'`` then rename, so a crash never leaves half a frame."""
    tmp = path + ".part"
    with open(tmp, "wb") as fh:
        fh.write(encode_png(pixels))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
