"""Read the uncompressed 24/32-bit BMP files Blender writes, with numpy only.

The environment is saved as BMP rather than PNG because both the save and
the read are cheaper (measured at 512 px: PNG save 20 ms + read 8 ms, BMP
save 10 ms + read under 1 ms) and the picture is the same 8-bit display image.
"""
from __future__ import annotations

import struct

import numpy as np


class BmpError(ValueError):
    """Not a BMP this reader understands."""


def read_bmp_rgb(path: str) -> np.ndarray:
    """uint8 [H, W, 3], top row first."""
    with open(path, "rb") as fh:
        buf = fh.read()
    if buf[:2] != b"BM" or len(buf) < 54:
        raise BmpError(f"{path} is not a BMP file")
    (offset,) = struct.unpack_from("<I", buf, 10)
    width, height, _planes, bits, compression = struct.unpack_from("<iiHHI", buf, 18)
    if bits not in (24, 32) or compression not in (0, 3):
        raise BmpError(f"{path}: {bits}-bit BMP with compression {compression} is not supported")
    channels = bits // 8
    rows = abs(height)
    stride = (width * channels + 3) & ~3
    data = np.frombuffer(buf, np.uint8, stride * rows, offset).reshape(rows, stride)
    px = data[:, :width * channels].reshape(rows, width, channels)[..., 2::-1]  # BGR(A) -> RGB
    if height > 0:  # bottom-up, the usual case
        px = px[::-1]
    return np.ascontiguousarray(px)
