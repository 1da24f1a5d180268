"""Bytes <-> messages: the JSON header frame and the raw array buffers after it.

``decode`` is the one door every received message goes through, on both ends,
and it can raise nothing but ``ProtocolError``: the header's size and nesting
are bounded, JSON's non-standard NaN/Infinity (and numbers that overflow to
inf) are refused, and every field it reads is type-checked before use. The
checks of decoded buffers against the per-frame input table and the reference
image live here too. Imports only the standard library and numpy.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .conventions import FACE_BOX_LAYOUT, NUM_HAND_KEYPOINTS, NUM_KEYPOINTS, TOE_KEYPOINT_NAMES
from .messages import (E_BAD_BUFFERS, E_BAD_DTYPE, E_BAD_HEADER, E_BAD_JSON, E_BAD_SHAPE, E_BAD_VERSION,
                       E_NOT_FINITE, E_TOO_LARGE, E_UNKNOWN_TYPE, MAX_HEADER_DEPTH, PROTOCOL_VERSION,
                       Header, JobSpec, ProtocolError, clip, echo)

# -- dtypes --------------------------------------------------------------------
DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "int32": np.dtype("<i4"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
}
MAX_DIMS = 4   # a buffer has at most 4 dimensions, each below 2**31


# -- per-frame inputs ----------------------------------------------------------
# Shapes use H, W (the job's resolution) and K (keypoints per frame).
# Which inputs an engine requires is declared in its INFO entry. The keypoint
# layouts and the no-surface depth are shared with the models and the passes:
# defined in conventions.py.
@dataclass(frozen=True)
class InputSpec:
    """One per-frame input: its dtype, its shape pattern and what it means."""
    name: str
    dtype: str
    shape: tuple          # symbolic: "H", "W", "K" or ints
    doc: str

    def concrete_shape(self, height: int, width: int) -> tuple:
        sym = {"H": height, "W": width, "K": NUM_KEYPOINTS}
        return tuple(sym.get(d, d) for d in self.shape)


FRAME_INPUTS: dict[str, InputSpec] = {s.name: s for s in (
    InputSpec("environment", "uint8", ("H", "W", 3),
              "scene rendered with the character hidden, sRGB"),
    InputSpec("character_mask", "uint8", ("H", "W"),
              "exact character silhouette, 0 or 255 (the server derives the "
              "shape-agnostic mask from it)"),
    InputSpec("character_depth", "float32", ("H", "W"),
              "planar camera Z of the character's body; NO_SURFACE_DEPTH "
              "where it has no surface"),
    InputSpec("scene_depth", "float32", ("H", "W"),
              "planar camera Z of the environment; NO_SURFACE_DEPTH where "
              "nothing is hit"),
    InputSpec("keypoints", "float32", ("K", 4),
              "per keypoint x, y (pixels, top-left origin), planar depth, "
              "visibility (1 visible, 0.5 occluded by the scene, 0 absent)"),
    InputSpec("object_labels", "uint8", ("H", "W"),
              "0 = none, i = the i-th name of the job's 'objects' list"),
    # Optional (added in v1 without a version change: engines list them in
    # optional_inputs; servers that do not know them drop nothing they need).
    InputSpec("hand_keypoints", "float32", (NUM_HAND_KEYPOINTS, 4),
              "21 points per hand (HAND_POINTS), left then right, columns as in "
              "'keypoints'; visibility 0 where the rig has no such finger bone"),
    InputSpec("toe_keypoints", "float32", (len(TOE_KEYPOINT_NAMES), 4),
              "left and right toe (TOE_KEYPOINT_NAMES), columns as in 'keypoints'"),
    InputSpec("face_box", "float32", (len(FACE_BOX_LAYOUT),),
              "x0, y0, x1, y1 of the head in pixels, then visibility (FACE_BOX_LAYOUT)"),
)}

# Job-level buffers sent with SUBMIT.
REFERENCE = "reference"                    # uint8 [h, w, 3|4] (alpha = matte)
REFERENCE_KEYPOINTS = "reference_keypoints"  # float32 [K, 4], optional

# Buffers of a RESULT.
RESULT_RGBA = "rgba"    # uint8 [H, W, 4]: the composite (alpha 255)
RESULT_MATTE = "matte"  # uint8 [H, W]: where the generated character is


# -- encoding -------------------------------------------------------------------
def header(type_: str, **fields) -> dict:
    """A raw header; code that speaks the protocol uses the typed ``messages`` classes."""
    h = {"v": PROTOCOL_VERSION, "type": type_}
    h.update(fields)
    return h


def encode(hdr: Mapping | Header | JobSpec, arrays: Mapping[str, np.ndarray] | None = None) -> list:
    """Header (+ named arrays) -> list of frames for ``wire.send_parts``.

    Arrays are sent without copying when they are already C-contiguous and
    little-endian; their descriptors are written into the header.
    """
    hdr = hdr.to_dict() if isinstance(hdr, (Header, JobSpec)) else dict(hdr)
    hdr.setdefault("v", PROTOCOL_VERSION)
    frames: list = [b""]
    if arrays:
        descs = []
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            dtype_name = _dtype_name(arr.dtype)
            if dtype_name is None:
                raise ValueError(f"array {name!r} has dtype {arr.dtype}; the wire takes {sorted(DTYPES)}")
            arr = np.ascontiguousarray(arr, dtype=DTYPES[dtype_name])
            descs.append({"name": name, "dtype": dtype_name, "shape": list(arr.shape)})
            frames.append(memoryview(arr).cast("B") if arr.size else b"")  # type: ignore[arg-type]  # ndarray is a buffer
        hdr["buffers"] = descs
    frames[0] = json.dumps(hdr, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return frames


_DTYPE_NAMES = {d: name for name, d in DTYPES.items()}


def _dtype_name(dt: np.dtype) -> str | None:
    """Wire name of a dtype in either byte order (the encoder converts to little-endian)."""
    dt = np.dtype(dt)
    name = _DTYPE_NAMES.get(dt)
    return name if name is not None else _DTYPE_NAMES.get(dt.newbyteorder("<"))


# -- decoding -------------------------------------------------------------------
def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} overflows a float")
    return value


def _depth(value, limit: int) -> int:
    """Nesting depth of a parsed JSON value, without recursion; stops past ``limit``."""
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        nxt: list = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        level = [v for v in nxt if isinstance(v, (dict, list))]
    return depth


def parse_header(raw: bytes, *, max_bytes: int | None = None) -> dict:
    """Frame 0 -> the header dict; ProtocolError if it is not a bounded JSON object."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise ProtocolError(E_TOO_LARGE, f"header frame is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        hdr = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ProtocolError(E_BAD_JSON, f"header frame is nested too deeply (at most {MAX_HEADER_DEPTH} levels)"
                            ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(E_BAD_JSON, f"header frame is not UTF-8 JSON: {echo(str(exc))}") from None
    if not isinstance(hdr, dict):
        raise ProtocolError(E_BAD_HEADER, f"header must be a JSON object, got {type(hdr).__name__}")
    if _depth(hdr, MAX_HEADER_DEPTH) > MAX_HEADER_DEPTH:
        raise ProtocolError(E_BAD_JSON, f"header frame is nested too deeply (at most {MAX_HEADER_DEPTH} levels)")
    return hdr


def decode(frames: Sequence, *, max_bytes: int | None = None, max_header_bytes: int | None = None,
           allowed_types: Iterable[str] | None = None) -> tuple[dict, dict]:
    """Frames -> (header, {name: array}). Raises ProtocolError on any fault.

    Arrays are zero-copy views on the received buffers (read-only). Float
    buffers are checked for NaN/Inf.
    """
    if not frames:
        raise ProtocolError(E_BAD_HEADER, "empty message: expected a JSON header frame")
    # One flat byte view per frame, made once: zmq.Frame builds its buffer on demand.
    views = [memoryview(_as_bytes_like(f)).cast("B") for f in frames]
    total = sum(v.nbytes for v in views)
    if max_bytes is not None and total > max_bytes:
        raise ProtocolError(E_TOO_LARGE, f"message is {total} bytes; the limit is {max_bytes}")
    hdr = parse_header(views[0].tobytes(), max_bytes=max_header_bytes)
    job = hdr.get("job") if isinstance(hdr.get("job"), str) else None
    version = hdr.get("v")
    # type() is int, not isinstance: JSON's true and 1.0 are not version 1.
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(E_BAD_VERSION,
                            f"protocol version {echo(version)} is not supported; this side speaks v{PROTOCOL_VERSION}",
                            field="v", job=job)
    mtype = hdr.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError(E_BAD_HEADER, "header field 'type' must be a string", field="type", job=job)
    if allowed_types is not None and mtype not in allowed_types:
        raise ProtocolError(E_UNKNOWN_TYPE, f"unknown message type {echo(mtype)}; "
                            f"expected one of {sorted(allowed_types)}", field="type", job=job)
    arrays = _decode_buffers(hdr, views[1:], job)
    return hdr, arrays


def _as_bytes_like(f):
    # zmq.Frame exposes .buffer; bytes/memoryview pass through.
    return getattr(f, "buffer", f)


def _decode_buffers(hdr: dict, payload: Sequence, job: str | None) -> dict:
    descs = hdr.get("buffers", [])
    if not isinstance(descs, list):
        raise ProtocolError(E_BAD_BUFFERS, "'buffers' must be a list of {name, dtype, shape}", field="buffers", job=job)
    if len(descs) != len(payload):
        raise ProtocolError(E_BAD_BUFFERS,
                            f"header describes {len(descs)} buffers but {len(payload)} were sent",
                            field="buffers", job=job)
    arrays = {}
    for i, (desc, frame) in enumerate(zip(descs, payload)):
        where = f"buffers[{i}]"
        if not isinstance(desc, dict) or not isinstance(desc.get("name"), str):
            raise ProtocolError(E_BAD_BUFFERS, f"{where} must be an object with a string 'name'", field=where, job=job)
        name = desc["name"]
        where = f"buffers.{clip(name)}"
        if name in arrays:
            raise ProtocolError(E_BAD_BUFFERS, f"buffer {echo(name)} appears twice", field=where, job=job)
        dtype_name = desc.get("dtype")
        if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
            raise ProtocolError(E_BAD_DTYPE, f"{where}: dtype {echo(dtype_name)} is not supported; "
                                f"expected one of {sorted(DTYPES)}",
                                field=where, job=job)
        shape = desc.get("shape")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)):
            raise ProtocolError(E_BAD_SHAPE, f"{where}: shape must be a list of at most {MAX_DIMS} non-negative "
                                f"integers below 2**31, got {echo(shape)}",
                                field=where, job=job)
        dtype = DTYPES[dtype_name]
        expected = math.prod(shape) * dtype.itemsize
        buf = frame
        if len(buf) != expected:
            raise ProtocolError(E_BAD_BUFFERS,
                                f"{where}: {len(buf)} bytes sent, but {dtype_name}{shape} needs {expected}",
                                field=where, job=job)
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape) if expected else np.zeros(shape, dtype)
        if dtype.kind == "f" and arr.size and not _all_finite(arr):
            raise ProtocolError(E_NOT_FINITE, f"{where} holds NaN or Inf; expected finite values",
                                field=where, job=job)
        arrays[name] = arr
    return arrays


def _all_finite(arr: np.ndarray) -> bool:
    """NaN/Inf check. ``isfinite`` into a bool temporary then ``all`` is about
    twice as fast as a float sum on these sizes and cannot overflow."""
    return bool(np.isfinite(arr).all())


# -- checks of decoded buffers ------------------------------------------------------
def check_frame_inputs(arrays: Mapping[str, np.ndarray], *, height: int, width: int,
                       n_objects: int = 0, job: str | None = None) -> None:
    """Check the buffers of one FRAME message against the job's resolution."""
    for name, arr in arrays.items():
        spec = FRAME_INPUTS.get(name)
        where = f"frame.{clip(name)}"
        if spec is None:
            raise ProtocolError(E_BAD_BUFFERS, f"unknown frame input {echo(name)}; expected some of "
                                f"{sorted(FRAME_INPUTS)}", field=where, job=job)
        if _dtype_name(arr.dtype) != spec.dtype:
            raise ProtocolError(E_BAD_DTYPE, f"{where} must be {spec.dtype}, got {_dtype_name(arr.dtype)}",
                                field=where, job=job)
        want = spec.concrete_shape(height, width)
        if tuple(arr.shape) != want:
            raise ProtocolError(E_BAD_SHAPE, f"{where} must have shape {list(want)} for a {width}x{height} job, "
                                f"got {list(arr.shape)}",
                                field=where, job=job)
        if name == "object_labels" and arr.size and int(arr.max()) > n_objects:
            raise ProtocolError(E_BAD_SHAPE, f"{where} uses label {int(arr.max())} "
                                f"but the job names {n_objects} objects",
                                field=where, job=job)


def check_reference(arr: np.ndarray, *, max_pixels: int, job: str | None = None) -> None:
    where = f"submit.{REFERENCE}"
    if arr.dtype != DTYPES["uint8"]:
        raise ProtocolError(E_BAD_DTYPE, f"{where} must be uint8, got {_dtype_name(arr.dtype)}", field=where, job=job)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ProtocolError(E_BAD_SHAPE, f"{where} must be uint8 [h, w, 3 or 4], got {arr.dtype}{list(arr.shape)}",
                            field=where, job=job)
    if arr.shape[0] < 8 or arr.shape[1] < 8 or arr.shape[0] * arr.shape[1] > max_pixels:
        raise ProtocolError(E_TOO_LARGE if arr.shape[0] * arr.shape[1] > max_pixels else E_BAD_SHAPE,
                            f"{where} must be between 8x8 and {max_pixels} pixels, got {arr.shape[1]}x{arr.shape[0]}",
                            field=where, job=job)


def check_reference_keypoints(arr: np.ndarray, job: str | None = None) -> None:
    where = f"submit.{REFERENCE_KEYPOINTS}"
    if arr.dtype != DTYPES["float32"]:
        raise ProtocolError(E_BAD_DTYPE, f"{where} must be float32, got {_dtype_name(arr.dtype)}", field=where, job=job)
    if tuple(arr.shape) != (NUM_KEYPOINTS, 4):
        raise ProtocolError(E_BAD_SHAPE, f"{where} must have shape [{NUM_KEYPOINTS}, 4], got {list(arr.shape)}",
                            field=where, job=job)
