"""Inhabit wire protocol, version 1 -- the one door to every wire fact.

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

The facts live in two modules, gathered here under one name: ``messages``
(message types, each header as a dataclass, error codes, limits) and
``codec`` (bytes <-> messages, dtypes, the per-frame input table and the
buffer checks). This module adds the engine parameters (``ParamSpec``) and
where a resumed job restarts. The keypoint layout the wire is written in is
``conventions``'; only the names a reader of the wire needs are repeated here.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from .codec import (DTYPES, FRAME_INPUTS, MAX_DIMS, REFERENCE,  # noqa: F401
                    REFERENCE_KEYPOINTS, RESULT_MATTE, RESULT_RGBA, InputSpec, check_frame_inputs,
                    check_reference, check_reference_keypoints, decode, encode, header, parse_header)
# The wire's keypoint order and count, for readers of the wire; code takes them from conventions.
from .conventions import KEYPOINT_LAYOUT, KEYPOINT_NAMES, NUM_KEYPOINTS  # noqa: F401
from .messages import (ACCEPTED, CANCEL, CANCELLED, CLIENT_TYPES, CREDIT, DEFAULT_LIMITS, DONE,  # noqa: F401
                       E_BAD_BUFFERS, E_BAD_DTYPE, E_BAD_HEADER, E_BAD_INDEX, E_BAD_JSON, E_BAD_PARAM,
                       E_BAD_SHAPE, E_BAD_VERSION, E_BUSY, E_DUPLICATE_FRAME, E_ENGINE_FAILED, E_INTERNAL,
                       E_MISSING_INPUT, E_NOT_FINITE, E_SHUTDOWN, E_TOO_LARGE, E_UNKNOWN_ENGINE, E_UNKNOWN_JOB,
                       E_UNKNOWN_PARAM, E_UNKNOWN_TYPE, E_WINDOW_EXCEEDED, END_INPUT, ERROR, FRAME, HELLO, INFO,
                       MAX_HEADER_DEPTH, MESSAGES, PING, PONG, PROGRESS, PROTOCOL_VERSION, RESULT, SERVER_LOST,
                       SERVER_TYPES, STAGES, SUBMIT, TERMINAL_TYPES, Accepted, Cancel, Cancelled, Credit, Done,
                       EndInput, Error, Frame, Header, Hello, Info, JobSpec, Ping, Pong, Progress, ProtocolError,
                       Result, clip, echo, parse)

DEFAULT_PORT = 5557
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"


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
                raise ProtocolError(E_BAD_PARAM, f"{where} must be true or false, got {echo(value)}", field=where)
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise ProtocolError(E_BAD_PARAM, f"{where} must be one of {list(self.choices)}, got {echo(value)}",
                                    field=where)
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise ProtocolError(E_BAD_PARAM, f"{where} must be a string, got {echo(value)}", field=where)
            return value
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProtocolError(E_BAD_PARAM, f"{where} must be a number, got {echo(value)}", field=where)
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ProtocolError(E_BAD_PARAM, f"{where} must be a whole number, got {echo(value)}", field=where)
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise ProtocolError(E_BAD_PARAM, f"{where} must be finite, got {echo(value)}", field=where)
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise ProtocolError(E_BAD_PARAM, f"{where} must be in [{self.min}, {self.max}], got {echo(value)}",
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
                            f"unknown parameter {echo(unknown[0])}; this engine takes {sorted(by_name)}",
                            field=f"params.{clip(unknown[0])}")
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
