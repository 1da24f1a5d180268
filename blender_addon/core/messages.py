"""The wire's messages, version 1: each header is a small dataclass, so each
field name is written once, here.

``to_dict`` gives the header to encode (``"v"`` and ``"type"`` first, then the
fields in the order declared); ``from_dict`` reads a decoded header, checking
the type of every field it uses, and raises ``ProtocolError`` naming the field
(``<type>.<field>``). Fields a peer does not know are ignored, so optional
fields can be added within a version. ``parse`` picks the class by ``"type"``.

The codes of ERROR replies and the limits a server announces live here too;
the byte framing lives in ``codec``. Imports only the standard library.
"""
from __future__ import annotations

import math
import reprlib
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Mapping, TypeVar

from .conventions import KEYPOINT_LAYOUT

PROTOCOL_VERSION = 1

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
E_BAD_JSON = "bad_json"                # frame 0 is not UTF-8 JSON (or nested too deep, or too long)
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
E_INTERNAL = "internal_error"          # the server failed on this one message (a bug); it keeps serving

# -- limits (servers may lower them and announce theirs in INFO) --------------
DEFAULT_LIMITS = {
    "max_width": 2048,
    "max_height": 2048,
    "max_frames": 10000,
    "max_message_bytes": 256 * 1024 * 1024,
    "max_header_bytes": 64 * 1024,    # frame 0 of a client message
    "max_reference_pixels": 4096 * 4096,
    "max_objects": 255,
    "heartbeat_interval_s": 1.0,
    "heartbeat_timeout_s": 10.0,
    "frame_timeout_s": 30.0,          # a running job waits this long for its client's next frame
}
# JSON nesting deeper than this is refused (no header needs more than 4 levels).
MAX_HEADER_DEPTH = 32

# -- bounded echo ----------------------------------------------------------------
# A client's strings go back into replies and logs cut and escaped, so a
# 3 MB name or a NUL byte never reaches a log line whole.
_ECHO = reprlib.Repr()
_ECHO.maxstring = 64
_ECHO.maxother = 64
_ECHO.maxlevel = 2
_ECHO.maxlist = _ECHO.maxtuple = _ECHO.maxdict = 6


ECHO_CHARS = 80


def echo(value: Any) -> str:
    """repr() of a client value, at most ECHO_CHARS characters, control characters escaped."""
    text = _ECHO.repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS - 3] + "..."


def clip(text: str, limit: int = 64) -> str:
    """A client string used as a name inside ours (a ``field``): printable, at most ``limit`` characters."""
    text = text[:limit]
    return text if text.isprintable() else repr(text)[1:-1]


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

    def to_message(self, **extra) -> "Error":
        return Error(code=self.code, message=self.message, job=self.job, field=self.field, **extra)

    def to_header(self) -> dict:
        return self.to_message().to_dict()


# -- typed headers ----------------------------------------------------------------
# A field's annotation names what from_dict accepts: str, int, float (finite),
# bool, dict, list or Any, optionally "| None".
_KINDS: dict[str, tuple[Any, str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
              "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "dict": (lambda v: isinstance(v, dict), "a JSON object"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "Any": (lambda v: True, "any value"),
}
H = TypeVar("H", bound="Header")


def field_kind(annotation: str) -> tuple[str, bool]:
    """'int | None' -> ('int', True); 'list' -> ('list', False)."""
    parts = [p.strip() for p in str(annotation).split("|")]
    base = [p.split("[")[0] for p in parts if p != "None"]
    return base[0], "None" in parts


class Header:
    """Base of every message header (subclasses are dataclasses)."""
    TYPE: ClassVar[str]
    # Optional fields left out of the header when None (they ride along only sometimes).
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()
    # Error code for a field of the wrong type, where the protocol names a specific one.
    FIELD_CODES: ClassVar[Mapping[str, str]] = {}

    def to_dict(self) -> dict:
        d: dict = {"v": PROTOCOL_VERSION, "type": self.TYPE}
        for f in fields(self):  # type: ignore[arg-type]  # subclasses are dataclasses
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_NONE:
                continue
            d[f.name] = value
        return d

    @classmethod
    def from_dict(cls: type[H], hdr: Mapping) -> H:
        values = {}
        for name, check, words, nullable, required in _schema(cls):
            if name not in hdr:
                if not required:
                    continue  # an optional field: the dataclass default applies
                raise _field_error(cls, hdr, name, E_BAD_HEADER, f"is missing; expected {words}")
            value = hdr[name]
            if not (check(value) or (nullable and value is None)):
                raise _field_error(cls, hdr, name, cls.FIELD_CODES.get(name, E_BAD_HEADER),
                                   f"must be {words}{' or null' if nullable else ''}, got {echo(value)}")
            values[name] = value
        return cls(**values)


_SCHEMAS: dict[type, tuple] = {}


def _schema(cls: type) -> tuple:
    """(name, check, words, nullable, required) per field, read once per class."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        out = []
        for f in fields(cls):
            kind, nullable = field_kind(str(f.type))
            check, words = _KINDS[kind]
            out.append((f.name, check, words, nullable, f.default is MISSING and f.default_factory is MISSING))
        schema = _SCHEMAS[cls] = tuple(out)
    return schema


def _field_error(cls, hdr: Mapping, name: str, code: str, text: str) -> ProtocolError:
    job = hdr.get("job")
    where = f"{cls.TYPE}.{name}"
    return ProtocolError(code, f"{where} {text}", field=where, job=job if isinstance(job, str) else None)


# client -> server (SUBMIT is JobSpec)
@dataclass(frozen=True)
class Hello(Header):
    TYPE: ClassVar[str] = HELLO


@dataclass(frozen=True)
class Ping(Header):
    TYPE: ClassVar[str] = PING
    t: float | None = None         # the client's clock, echoed in PONG


@dataclass(frozen=True)
class Frame(Header):
    TYPE: ClassVar[str] = FRAME
    FIELD_CODES: ClassVar[Mapping[str, str]] = {"index": E_BAD_INDEX}
    job: str
    index: int


@dataclass(frozen=True)
class EndInput(Header):
    TYPE: ClassVar[str] = END_INPUT
    job: str


@dataclass(frozen=True)
class Cancel(Header):
    TYPE: ClassVar[str] = CANCEL
    job: str


# server -> client
@dataclass(frozen=True)
class Info(Header):
    TYPE: ClassVar[str] = INFO
    server_version: str
    protocol_version: int
    engines: list                  # engine entries (see docs/protocol.md)
    device: str
    worker_devices: list
    limits: dict
    concurrent_jobs: int
    queue: dict                    # {running, queued, open_jobs}
    clients: int
    torch_imported: bool
    frames_held: int
    bytes_held: int


@dataclass(frozen=True)
class Pong(Header):
    TYPE: ClassVar[str] = PONG
    t: float | None = None


@dataclass(frozen=True)
class Accepted(Header):
    TYPE: ClassVar[str] = ACCEPTED
    job: str
    request: str
    credit: int
    window: int
    queue_position: int
    streaming: bool


@dataclass(frozen=True)
class Credit(Header):
    TYPE: ClassVar[str] = CREDIT
    job: str
    upto: int


@dataclass(frozen=True)
class Progress(Header):
    TYPE: ClassVar[str] = PROGRESS
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"credit"})
    job: str
    stage: str
    fraction: float
    frame: int | None = None
    step: int | None = None
    steps: int | None = None
    eta_s: float | None = None
    frames_done: int = 0
    frames: int = 0
    credit: int | None = None      # a grown input credit riding along


@dataclass(frozen=True)
class Result(Header):
    TYPE: ClassVar[str] = RESULT
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"credit"})
    job: str
    index: int
    credit: int | None = None


@dataclass(frozen=True)
class Done(Header):
    TYPE: ClassVar[str] = DONE
    job: str
    frames: int
    seconds: float


@dataclass(frozen=True)
class Cancelled(Header):
    TYPE: ClassVar[str] = CANCELLED
    job: str
    reason: str = "cancelled"


@dataclass(frozen=True)
class Error(Header):
    TYPE: ClassVar[str] = ERROR
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"request"})
    code: str
    message: str
    job: str | None = None
    field: str | None = None
    request: str | None = None     # the SUBMIT's token, on every error about a submit


# SUBMIT has its own class (JobSpec, with limits), so it is not in this table.
MESSAGES: dict[str, type[Header]] = {cls.TYPE: cls for cls in (
    Hello, Ping, Frame, EndInput, Cancel, Info, Pong, Accepted, Credit, Progress, Result, Done, Cancelled, Error)}


def parse(hdr: Mapping) -> Header:
    """The typed header of a decoded message (whose ``type`` decode already checked)."""
    return MESSAGES[hdr["type"]].from_dict(hdr)


# -- SUBMIT ---------------------------------------------------------------------------
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

    def to_dict(self) -> dict:
        return {"v": PROTOCOL_VERSION, "type": SUBMIT, "engine": self.engine, "width": self.width,
                "height": self.height, "frames": self.frames, "params": dict(self.params),
                "objects": list(self.objects), "name": self.name, "request": self.request,
                "keypoint_layout": KEYPOINT_LAYOUT}

    to_header = to_dict

    @classmethod
    def from_dict(cls, hdr: Mapping, limits: Mapping = DEFAULT_LIMITS) -> "JobSpec":
        """Validate the job-level fields of a SUBMIT header (not the engine params)."""
        def need_int(key, lo, hi):
            v = hdr.get(key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ProtocolError(E_BAD_HEADER, f"submit.{key} must be an integer, got {echo(v)}",
                                    field=f"submit.{key}")
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
            raise ProtocolError(E_BAD_HEADER, f"submit.keypoint_layout must be {KEYPOINT_LAYOUT!r}, got {echo(layout)}",
                                field="submit.keypoint_layout")
        params = hdr.get("params", {})
        if not isinstance(params, dict):
            raise ProtocolError(E_BAD_HEADER, "submit.params must be a JSON object", field="submit.params")
        name = hdr.get("name", "")
        request = hdr.get("request", "")
        for key, value in (("name", name), ("request", request)):
            if not isinstance(value, str):
                raise ProtocolError(E_BAD_HEADER, f"submit.{key} must be a string, got {echo(value)}",
                                    field=f"submit.{key}")
        return cls(engine=engine,
                   width=need_int("width", 8, limits["max_width"]),
                   height=need_int("height", 8, limits["max_height"]),
                   frames=need_int("frames", 1, limits["max_frames"]),
                   params=params, objects=objects, name=name, request=request)

    from_header = from_dict
