"""Inhabit wire protocol, version 1 -- the one home of every wire fact.

Both the Blender add-on and the diffusion server import this module, so it
imports neither ``bpy`` nor ``torch`` (only the standard library and numpy).
``docs/protocol.md`` is the prose description of the same contract; when the
wire changes, both change and ``PROTOCOL_VERSION`` goes up.

Transport: ZeroMQ, server ROUTER, client DEALER. Every message is multipart:

    frame 0      UTF-8 JSON object (the header)
    frame 1..n   raw array buffers, C-contiguous, little-endian

The header always carries ``"v"`` (protocol version) and ``"type"``. A message
with buffers carries ``"buffers": [{"name", "dtype", "shape"}, ...]`` in the
same order as the frames, so a receiver checks sizes before it touches bytes.
Nothing is ever pickled.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .conventions import (FACE_BOX_LAYOUT, HAND_KEYPOINT_NAMES, HAND_LAYOUT, HAND_LIMBS,  # noqa: F401
                          HAND_POINTS, KEYPOINT_INDEX, KEYPOINT_LAYOUT, KEYPOINT_LIMBS, KEYPOINT_NAMES,
                          NO_SURFACE_DEPTH, NO_SURFACE_THRESHOLD, NUM_HAND_KEYPOINTS, NUM_KEYPOINTS,
                          TOE_KEYPOINT_NAMES, VIS_ABSENT, VIS_OCCLUDED, VIS_VISIBLE)

PROTOCOL_VERSION = 1
DEFAULT_PORT = 5557
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"


# -- message types -------------------------------------------------------------
# client -> server
HELLO = "hello"            # ask for INFO
SUBMIT = "submit"          # job spec + reference image
FRAME = "frame"            # per-frame conditioning, one frame per message
END_INPUT = "end_input"    # no more frames for this job
CANCEL = "cancel"          # cancel one job
PING = "ping"              # heartbeat; server answers PONG
# server -> client
INFO = "info"              # server version, engines, device, limits
ACCEPTED = "accepted"      # job id, queue position, input credit
CREDIT = "credit"          # client may now send frames with index < upto
PROGRESS = "progress"      # stage, fraction, frame, step, ETA
RESULT = "result"          # one composited frame + character matte
DONE = "done"              # job finished; every RESULT has been sent
CANCELLED = "cancelled"    # job stopped on request (or server shutdown)
ERROR = "error"            # code + message (+ job, + field)
PONG = "pong"

# Not a message: the event a client reports when the server stopped answering
# (no reply within the heartbeat timeout). Client code branches on it like on
# a terminal type.
SERVER_LOST = "server_lost"

CLIENT_TYPES = frozenset({HELLO, SUBMIT, FRAME, END_INPUT, CANCEL, PING})
SERVER_TYPES = frozenset({INFO, ACCEPTED, CREDIT, PROGRESS, RESULT, DONE,
                          CANCELLED, ERROR, PONG})
TERMINAL_TYPES = frozenset({DONE, CANCELLED, ERROR})

# Job stages reported in PROGRESS.
STAGES = ("queued", "loading", "receiving", "generating", "compositing", "done")

# -- stable error codes (clients may branch on them) ---------------------------
E_BAD_JSON = "bad_json"                # frame 0 is not UTF-8 JSON
E_BAD_HEADER = "bad_header"            # header is not an object / field wrong type
E_BAD_VERSION = "bad_version"          # "v" is not PROTOCOL_VERSION
E_UNKNOWN_TYPE = "unknown_type"
E_BAD_BUFFERS = "bad_buffers"          # count/bytes do not match descriptors
E_BAD_DTYPE = "bad_dtype"
E_BAD_SHAPE = "bad_shape"
E_NOT_FINITE = "not_finite"            # NaN/Inf in a float buffer
E_BAD_INDEX = "bad_index"              # frame index out of range
E_DUPLICATE_FRAME = "duplicate_frame"
E_WINDOW_EXCEEDED = "window_exceeded"  # frame sent beyond the granted credit
E_TOO_LARGE = "too_large"              # payload / resolution / frame count over limit
E_UNKNOWN_ENGINE = "unknown_engine"
E_UNKNOWN_PARAM = "unknown_param"
E_BAD_PARAM = "bad_param"              # wrong type or out of range
E_MISSING_INPUT = "missing_input"      # required input absent at end_input
E_UNKNOWN_JOB = "unknown_job"
E_ENGINE_FAILED = "engine_failed"      # the engine raised while running
E_SHUTDOWN = "shutdown"                # server is stopping
E_BUSY = "busy"                        # queue full

# -- dtypes --------------------------------------------------------------------
DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "int32": np.dtype("<i4"),
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
}

# -- per-frame inputs ----------------------------------------------------------
# Shapes use H, W (the job's resolution) and K (keypoints per frame).
# Which inputs an engine requires is declared in its INFO entry.
# The keypoint layout (names, order, limbs, visibility values) and the
# no-surface depth are shared with the models and the passes: defined in
# conventions.py, re-exported here because the tables below use them.

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
# Inputs an older client may leave out; nothing required depends on them.
OPTIONAL_FRAME_INPUTS = ("hand_keypoints", "toe_keypoints", "face_box")

# Job-level buffers sent with SUBMIT.
REFERENCE = "reference"                    # uint8 [h, w, 3|4] (alpha = matte)
REFERENCE_KEYPOINTS = "reference_keypoints"  # float32 [K, 4], optional

# Buffers of a RESULT.
RESULT_RGBA = "rgba"    # uint8 [H, W, 4]: the composite (alpha 255)
RESULT_MATTE = "matte"  # uint8 [H, W]: where the generated character is

# -- limits (servers may lower them and announce theirs in INFO) --------------
DEFAULT_LIMITS = {
    "max_width": 2048,
    "max_height": 2048,
    "max_frames": 10000,
    "max_message_bytes": 256 * 1024 * 1024,
    "max_reference_pixels": 4096 * 4096,
    "max_objects": 255,
    "heartbeat_interval_s": 1.0,
    "heartbeat_timeout_s": 10.0,
    "frame_timeout_s": 30.0,          # a running job waits this long for its client's next frame
}


# -- engine parameters ----------------------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    """A parameter an engine accepts; sent in INFO so UIs can build widgets.

    ``kind`` is one of "int", "float", "bool", "choice", "str".
    """
    name: str
    kind: str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    doc: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["choices"] = list(self.choices)
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> "ParamSpec":
        return cls(name=d["name"], kind=d["kind"], default=d.get("default"),
                   min=d.get("min"), max=d.get("max"),
                   choices=tuple(d.get("choices") or ()), doc=d.get("doc", ""))

    def coerce(self, value: Any) -> Any:
        """Check ``value`` against this spec; return it in canonical type.

        Raises ProtocolError(E_BAD_PARAM) naming the parameter and the
        expectation.
        """
        where = f"params.{self.name}"
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ProtocolError(E_BAD_PARAM, f"{where} must be true or false, got {value!r}", field=where)
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise ProtocolError(E_BAD_PARAM, f"{where} must be one of {list(self.choices)}, got {value!r}",
                                    field=where)
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise ProtocolError(E_BAD_PARAM, f"{where} must be a string, got {value!r}", field=where)
            return value
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProtocolError(E_BAD_PARAM, f"{where} must be a number, got {value!r}", field=where)
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ProtocolError(E_BAD_PARAM, f"{where} must be a whole number, got {value!r}", field=where)
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise ProtocolError(E_BAD_PARAM, f"{where} must be finite, got {value!r}", field=where)
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise ProtocolError(E_BAD_PARAM, f"{where} must be in [{self.min}, {self.max}], got {value!r}",
                                    field=where)
            return value
        raise ValueError(f"ParamSpec {self.name}: unknown kind {self.kind!r}")


# Parameters every job has, whatever the engine.
COMMON_PARAMS = (
    ParamSpec("seed", "int", 0, 0, 2**63 - 1, doc="random seed; same seed, same frames"),
)


def validate_params(specs: Sequence[ParamSpec], given: Any) -> dict:
    """Fill defaults and check every given value; unknown names are errors."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ProtocolError(E_BAD_HEADER, "params must be a JSON object", field="params")
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise ProtocolError(E_UNKNOWN_PARAM,
                            f"unknown parameter {unknown[0]!r}; this engine takes {sorted(by_name)}",
                            field=f"params.{unknown[0]}")
    return {name: (spec.coerce(given[name]) if name in given else spec.default)
            for name, spec in by_name.items()}


def restart_frame(engine_entry: Mapping, params: Mapping, first_missing: int) -> int:
    """Where a job that resumes a shot must start so that ``first_missing`` is
    generated as the engine would: at that frame for engines whose frames are
    independent, else at the start of the window (or segment) holding it.

    ``engine_entry`` is the engine's INFO entry; its ``restart_window`` is None
    or ``{"frames", "overlap"}``, each an int or the name of a param (whose
    value ``params`` gives). Windows start at 0, stride, 2*stride, ...
    (stride = frames - overlap)."""
    window = engine_entry.get("restart_window")
    if not window:
        return first_missing

    def value(v):
        return int(params[v]) if isinstance(v, str) else int(v)
    stride = max(1, value(window["frames"]) - value(window.get("overlap", 0)))
    return (first_missing // stride) * stride


# -- errors ---------------------------------------------------------------------
class ProtocolError(Exception):
    """A message broke the protocol. Carries what an ERROR reply needs."""

    def __init__(self, code: str, message: str, *, field: str | None = None,
                 job: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.job = job

    def to_header(self) -> dict:
        return error_header(self.code, self.message, field=self.field, job=self.job)


def error_header(code: str, message: str, *, field: str | None = None,
                 job: str | None = None, **extra) -> dict:
    h = {"v": PROTOCOL_VERSION, "type": ERROR, "code": code, "message": message,
         "job": job, "field": field}
    h.update(extra)
    return h


# -- encoding -------------------------------------------------------------------
def header(type_: str, **fields) -> dict:
    h = {"v": PROTOCOL_VERSION, "type": type_}
    h.update(fields)
    return h


def encode(hdr: Mapping, arrays: Mapping[str, np.ndarray] | None = None) -> list:
    """Header (+ named arrays) -> list of frames for ``wire.send_parts``.

    Arrays are sent without copying when they are already C-contiguous and
    little-endian; their descriptors are written into the header.
    """
    hdr = dict(hdr)
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


def decode(frames: Sequence, *, max_bytes: int | None = None,
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
    raw = views[0].tobytes()
    try:
        hdr = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(E_BAD_JSON, f"header frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(hdr, dict):
        raise ProtocolError(E_BAD_HEADER, f"header must be a JSON object, got {type(hdr).__name__}")
    job = hdr.get("job") if isinstance(hdr.get("job"), str) else None
    if hdr.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(E_BAD_VERSION,
                            f"protocol version {hdr.get('v')!r} is not supported; this side speaks v{PROTOCOL_VERSION}",
                            field="v", job=job)
    mtype = hdr.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError(E_BAD_HEADER, "header field 'type' must be a string", field="type", job=job)
    if allowed_types is not None and mtype not in allowed_types:
        raise ProtocolError(E_UNKNOWN_TYPE, f"unknown message type {mtype!r}; expected one of {sorted(allowed_types)}",
                            field="type", job=job)
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
        where = f"buffers.{name}"
        if name in arrays:
            raise ProtocolError(E_BAD_BUFFERS, f"buffer {name!r} appears twice", field=where, job=job)
        dtype_name = desc.get("dtype")
        if dtype_name not in DTYPES:
            raise ProtocolError(E_BAD_DTYPE, f"{where}: dtype {dtype_name!r} is not supported; "
                                f"expected one of {sorted(DTYPES)}",
                                field=where, job=job)
        shape = desc.get("shape")
        if (not isinstance(shape, list) or len(shape) > 4
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)):
            raise ProtocolError(E_BAD_SHAPE, f"{where}: shape must be a list of at most 4 non-negative integers, "
                                f"got {shape!r}",
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


def check_frame_inputs(arrays: Mapping[str, np.ndarray], *, height: int, width: int,
                       n_objects: int = 0, job: str | None = None) -> None:
    """Check the buffers of one FRAME message against the job's resolution."""
    for name, arr in arrays.items():
        spec = FRAME_INPUTS.get(name)
        where = f"frame.{name}"
        if spec is None:
            raise ProtocolError(E_BAD_BUFFERS, f"unknown frame input {name!r}; expected some of {sorted(FRAME_INPUTS)}",
                                field=where, job=job)
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


# -- small typed views of the main headers -----------------------------------------
@dataclass
class JobSpec:
    """What a SUBMIT asks for (buffers travel beside it)."""
    engine: str
    width: int
    height: int
    frames: int
    params: dict = field(default_factory=dict)
    objects: list = field(default_factory=list)
    name: str = ""             # shot name, for logs
    request: str = ""          # client token echoed in ACCEPTED / ERROR

    def to_header(self) -> dict:
        return header(SUBMIT, engine=self.engine, width=self.width, height=self.height,
                      frames=self.frames, params=dict(self.params), objects=list(self.objects),
                      name=self.name, request=self.request,
                      keypoint_layout=KEYPOINT_LAYOUT)

    @classmethod
    def from_header(cls, hdr: Mapping, limits: Mapping = DEFAULT_LIMITS) -> "JobSpec":
        """Validate the job-level fields of a SUBMIT header (not the engine params)."""
        def need_int(key, lo, hi):
            v = hdr.get(key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ProtocolError(E_BAD_HEADER, f"submit.{key} must be an integer, got {v!r}", field=f"submit.{key}")
            if not lo <= v <= hi:
                code = E_TOO_LARGE if v > hi else E_BAD_HEADER
                raise ProtocolError(code, f"submit.{key} must be in [{lo}, {hi}], got {v}", field=f"submit.{key}")
            return v
        engine = hdr.get("engine")
        if not isinstance(engine, str) or not engine:
            raise ProtocolError(E_BAD_HEADER, "submit.engine must be an engine name (see INFO)", field="submit.engine")
        objects = hdr.get("objects", [])
        if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
            raise ProtocolError(E_BAD_HEADER, "submit.objects must be a list of object names", field="submit.objects")
        if len(objects) > limits["max_objects"]:
            raise ProtocolError(E_TOO_LARGE, f"submit.objects names {len(objects)} objects; "
                                f"the limit is {limits['max_objects']}",
                                field="submit.objects")
        layout = hdr.get("keypoint_layout", KEYPOINT_LAYOUT)
        if layout != KEYPOINT_LAYOUT:
            raise ProtocolError(E_BAD_HEADER, f"submit.keypoint_layout must be {KEYPOINT_LAYOUT!r}, got {layout!r}",
                                field="submit.keypoint_layout")
        params = hdr.get("params", {})
        if not isinstance(params, dict):
            raise ProtocolError(E_BAD_HEADER, "submit.params must be a JSON object", field="submit.params")
        name = hdr.get("name", "")
        request = hdr.get("request", "")
        if not isinstance(name, str) or not isinstance(request, str):
            raise ProtocolError(E_BAD_HEADER, "submit.name and submit.request must be strings", field="submit.name")
        return cls(engine=engine,
                   width=need_int("width", 8, limits["max_width"]),
                   height=need_int("height", 8, limits["max_height"]),
                   frames=need_int("frames", 1, limits["max_frames"]),
                   params=params, objects=objects, name=name, request=request)
