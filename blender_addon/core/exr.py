"""Read the uncompressed OpenEXR files the add-on renders, with numpy only.

Blender's bundled Python has no OpenEXR module and, in background mode, neither
the Viewer node nor ``Image.pixels`` of a multilayer EXR gives pixels (see
docs/addon.md). The add-on therefore writes its passes as *uncompressed*
scanline EXR (``exr_codec='NONE'``), which is simple enough to parse here:
single-part files (Blender 4.x multilayer) and multi-part files (Blender 5.0
writes one part per pass) are both handled. Compressed files are refused with
a clear error rather than decoded wrongly.
"""
from __future__ import annotations

import struct

import numpy as np

_MAGIC = 20000630
_MULTIPART_BIT = 0x1000
_TILED_BIT = 0x200
_PIXEL_TYPES: dict[int, np.dtype] = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


class ExrError(ValueError):
    """The file is not an EXR this reader understands."""


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _read_header(buf: bytes, pos: int) -> tuple[dict, int]:
    attrs: dict = {}
    while buf[pos] != 0:
        name, pos = _cstr(buf, pos)
        type_name, pos = _cstr(buf, pos)
        (size,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        attrs[name] = (type_name, buf[pos:pos + size])
        pos += size
    return attrs, pos + 1


def _channels(raw: bytes) -> list[tuple[str, np.dtype]]:
    out, pos = [], 0
    while raw[pos] != 0:
        name, pos = _cstr(raw, pos)
        ptype, _plinear, xs, ys = struct.unpack_from("<iB3xii", raw, pos)
        pos += 16
        if (xs, ys) != (1, 1):
            raise ExrError(f"channel {name!r} is subsampled; only full-resolution channels are supported")
        out.append((name, _PIXEL_TYPES[ptype]))
    return sorted(out)  # EXR stores channels in name order


def read_exr(path: str, only=None) -> dict[str, np.ndarray]:
    """Return {full channel name: float32 [H, W]} for every channel of every part
    (or only the names in ``only``).

    Multi-part names are the part's channel names as written (Blender names them
    ``Layer.Pass.Channel`` or, for single-channel passes, ``Layer.Pass``).
    """
    with open(path, "rb") as fh:
        buf = fh.read()
    if len(buf) < 8 or struct.unpack_from("<i", buf, 0)[0] != _MAGIC:
        raise ExrError(f"{path} is not an OpenEXR file")
    (flags,) = struct.unpack_from("<i", buf, 4)
    if flags & _TILED_BIT:
        raise ExrError(f"{path} is tiled; the add-on writes scanline EXR only")
    multipart = bool(flags & _MULTIPART_BIT)
    pos = 8
    headers = []
    while True:
        hdr, pos = _read_header(buf, pos)
        headers.append(hdr)
        if not multipart or buf[pos] == 0:
            break
    if multipart:
        pos += 1  # the empty header that ends the list

    parts = []
    for hdr in headers:
        comp = hdr.get("compression", ("", b"\0"))[1][0]
        if comp != 0:
            raise ExrError(f"{path} is compressed (method {comp}); render passes with exr_codec='NONE'")
        xmin, ymin, xmax, ymax = struct.unpack("<4i", hdr["dataWindow"][1])
        width, height = xmax - xmin + 1, ymax - ymin + 1
        chans = _channels(hdr["channels"][1])
        n_chunks = struct.unpack("<i", hdr["chunkCount"][1])[0] if "chunkCount" in hdr else height
        parts.append((hdr, chans, width, height, ymin, n_chunks))
    offsets = []
    for *_, n_chunks in parts:
        offsets.append(np.frombuffer(buf, "<u8", n_chunks, pos))
        pos += 8 * n_chunks

    result: dict[str, np.ndarray] = {}
    for part, table in zip(parts, offsets):
        _, chans, width, height, ymin, _ = part
        wanted = [(name, dt) for name, dt in chans if only is None or name in only]
        if wanted:
            result.update(_read_part(buf, table, chans, wanted, width, height, ymin, 4 if multipart else 0))
    return result


def _read_part(buf, table, chans, wanted, width, height, ymin, prefix) -> dict:
    """Uncompressed scanline chunks hold one line each: [part no.] y, size, then each channel's line."""
    starts, pos = {}, prefix + 8
    for name, dt in chans:
        starts[name] = pos
        pos += width * dt.itemsize
    stride = pos
    table = table.astype(np.int64)
    if len(table) == height and (len(table) < 2 or (np.diff(table) == stride).all()):
        # The usual layout: lines back to back, so the whole part is one [lines, stride] byte array.
        block = np.frombuffer(buf, np.uint8, stride * height, int(table[0])).reshape(height, stride)
        rows = block[:, prefix:prefix + 4].copy().view("<i4")[:, 0] - ymin
        planes = {}
        for name, dt in wanted:
            a = starts[name]
            line = np.ascontiguousarray(block[:, a:a + width * dt.itemsize]).view(dt)
            plane = np.empty((height, width), np.float32)
            plane[rows] = line
            planes[name] = plane
        return planes
    planes = {name: np.empty((height, width), np.float32) for name, _ in wanted}
    for off in table:
        p = int(off) + prefix
        (y,) = struct.unpack_from("<i", buf, p)
        for name, dt in wanted:
            planes[name][y - ymin] = np.frombuffer(buf, dt, width, p + starts[name] - prefix)
    return planes


def find_channel(channels: dict, layer: str, pass_name: str, channel: str | None = None) -> np.ndarray:
    """Look a pass up by layer/pass/channel whatever the naming variant."""
    names = [f"{layer}.{pass_name}.{channel}", f"{layer}.{pass_name}"] if channel else [f"{layer}.{pass_name}"]
    for name in names:
        if name in channels:
            return channels[name]
    raise ExrError(f"pass {layer}.{pass_name}{'.' + channel if channel else ''} is missing; have {sorted(channels)}")
