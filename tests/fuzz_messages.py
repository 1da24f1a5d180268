"""Hypothesis strategies for hostile client messages, built from the protocol's own tables.

A message is a list of frames (bytes). Three families:

* ``generated``: headers whose fields come from the typed message classes
  (``messages.MESSAGES`` and ``JobSpec``, each field's declared kind) with the
  right kind or any JSON value, and buffers from ``FRAME_INPUTS`` / ``DTYPES``
  with their concrete shapes, off-by-some shapes, byte counts and NaNs;
* ``mutated``: a valid message for the fuzzing client's open job (a SUBMIT, a
  FRAME, END_INPUT, CANCEL, PING, HELLO), then up to three mutations of its
  header keys, version, type, descriptors, payload or raw JSON text;
* ``raw``: bytes and JSON that are not headers at all.

``JOB`` in a header stands for the id of the job the example opened; the test
substitutes it before sending.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
from hypothesis import strategies as st

from blender_addon.core import codec, messages

JOB = "<<job>>"     # placeholder for the example's own open job id
W = H = 16          # the fuzzing client's job size
ENGINE = "echo"

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.integers(-3, 20),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                         st.sampled_from(["", "\x00", "é" * 3, "uint8", "float32", JOB]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)

# The right kind of value for each kind a typed field declares (messages.field_kind).
_KIND_VALUES = {
    "str": st.one_of(st.text(max_size=16), st.just(JOB)),
    "int": st.one_of(st.integers(-3, 40), st.integers(-2**63, 2**64)),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "dict": st.dictionaries(st.text(max_size=8), json_scalars, max_size=4),
    "list": st.lists(json_scalars, max_size=4),
    "Any": json_values,
}


def _field_value(kind: str):
    return st.one_of(_KIND_VALUES[kind], _KIND_VALUES[kind], json_values)


def _typed_header(cls) -> st.SearchStrategy:
    """Fields of a typed message: each present or not, of its kind or anything."""
    opt = {f.name: _field_value(messages.field_kind(str(f.type))[0]) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries({"v": st.just(1), "type": st.just(cls.TYPE)}, optional=opt)


_LIMITS = messages.DEFAULT_LIMITS
_submit_ints = st.sampled_from([-1, 0, 1, 7, 8, 16, 17, _LIMITS["max_width"], _LIMITS["max_width"] + 1,
                                _LIMITS["max_frames"], _LIMITS["max_frames"] + 1, 2**31, 2**64])
submit_headers = st.fixed_dictionaries(
    {"v": st.just(1), "type": st.just(messages.SUBMIT)},
    optional={"engine": st.one_of(st.just(ENGINE), st.text(max_size=8), json_values),
              "width": st.one_of(st.just(W), _submit_ints, json_values),
              "height": st.one_of(st.just(H), _submit_ints, json_values),
              "frames": st.one_of(st.integers(1, 4), _submit_ints, json_values),
              "params": st.one_of(st.fixed_dictionaries({}, optional={
                  "seed": json_values, "delay": st.sampled_from([0, 0.0, -1, 31, "x", None]),
                  "fail_at": st.sampled_from([-1, 0, 1, 2**70, 1.5]),
                  "nope": json_scalars}), json_values),
              "objects": st.one_of(st.lists(st.text(max_size=4), max_size=3), json_values),
              "name": st.one_of(st.text(max_size=20), json_values),
              "request": st.one_of(st.text(max_size=8), json_values),
              "keypoint_layout": st.one_of(st.just("openpose18"), json_values)})

header_strategies = st.one_of(submit_headers, *[_typed_header(cls) for cls in messages.MESSAGES.values()
                                                if cls.TYPE in messages.CLIENT_TYPES])

# -- buffers ----------------------------------------------------------------------------
_BUFFER_NAMES = [*codec.FRAME_INPUTS, codec.REFERENCE, codec.REFERENCE_KEYPOINTS]


@st.composite
def buffer(draw):
    """(descriptor, payload bytes): usually what the table says, sometimes not."""
    name = draw(st.one_of(st.sampled_from(_BUFFER_NAMES), st.text(max_size=10)))
    spec = codec.FRAME_INPUTS.get(name)
    dtype = draw(st.one_of(st.just(spec.dtype if spec else "uint8"), st.sampled_from(sorted(codec.DTYPES)),
                           st.sampled_from(["float64", "<f4", "", "bool"]), json_values))
    if spec is not None and draw(st.booleans()):
        shape = list(spec.concrete_shape(H, W))
    else:
        shape = draw(st.one_of(st.lists(st.integers(0, 20), max_size=4),
                               st.lists(st.integers(-2, 2**32), max_size=5), json_values))
    n = 0   # the byte count the descriptor asks for, when it is a sane one
    if (isinstance(dtype, str) and dtype in codec.DTYPES and isinstance(shape, list) and len(shape) <= 4
            and all(type(d) is int and 0 <= d < 2**16 for d in shape)):
        n = math.prod(shape) * codec.DTYPES[dtype].itemsize
        n = n if n <= 64 * 1024 else 0
    n = max(0, n + draw(st.sampled_from([0, 0, 0, 0, -1, 1, -n])))
    if draw(st.integers(0, 9)) == 0 and n >= 4 and dtype in ("float32", "float16"):
        payload = np.full(n // 4, np.nan, np.float32).tobytes() + bytes(n % 4)
    else:
        payload = bytes([draw(st.integers(0, 255))]) * n
    desc = draw(st.one_of(st.just({"name": name, "dtype": dtype, "shape": shape}),
                          st.fixed_dictionaries({}, optional={"name": st.one_of(st.just(name), json_values),
                                                              "dtype": st.just(dtype), "shape": st.just(shape)}),
                          json_values))
    return desc, payload


def _frames(hdr: dict, bufs: list) -> list[bytes]:
    hdr = dict(hdr)
    if bufs:
        hdr["buffers"] = [d for d, _ in bufs]
    return [json.dumps(hdr, allow_nan=True).encode(), *[p for _, p in bufs]]


generated = st.builds(_frames, header_strategies, st.lists(buffer(), max_size=3))


# -- mutations of valid messages ----------------------------------------------------------
def _valid_frame_arrays(index: int) -> dict:
    arrays = {}
    for name, spec in codec.FRAME_INPUTS.items():
        value = 0 if name == "object_labels" else index % 7   # the job names no objects
        arrays[name] = np.full(spec.concrete_shape(H, W), value, codec.DTYPES[spec.dtype])
    return arrays


def valid_messages(index: int) -> list[tuple[dict, dict]]:
    """(header, arrays) of each client message, valid for the example's job."""
    ref = np.full((16, 16, 3), 120, np.uint8)
    return [
        (messages.JobSpec(ENGINE, W, H, 3, request="fuzz").to_dict(), {codec.REFERENCE: ref}),
        (messages.Frame(job=JOB, index=index).to_dict(), _valid_frame_arrays(index)),
        (messages.EndInput(job=JOB).to_dict(), {}),
        (messages.Cancel(job=JOB).to_dict(), {}),
        (messages.Ping(t=1.5).to_dict(), {}),
        (messages.Hello().to_dict(), {}),
    ]


@st.composite
def mutated(draw):
    index = draw(st.integers(0, 3))
    hdr, arrays = draw(st.sampled_from(valid_messages(index)))
    frames = codec.encode(hdr, arrays)
    hdr = json.loads(frames[0])
    bufs = [(d, bytes(f)) for d, f in zip(hdr.pop("buffers", []), frames[1:])]
    known = sorted({f.name for cls in messages.MESSAGES.values() for f in dataclasses.fields(cls)}
                   | {"engine", "width", "height", "frames", "params", "objects", "request", "buffers"})
    raw_edit = None
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):  # 0: the valid message itself
        kind = draw(st.sampled_from(["set", "drop", "version", "type", "desc", "payload", "frames", "raw",
                                     "params"]))
        if kind == "params" and hdr.get("type") == messages.SUBMIT:
            # The engine's own parameters (echo's delay and fail_at, every engine's seed), valid or not.
            hdr["params"] = draw(st.fixed_dictionaries({}, optional={
                "seed": st.one_of(st.integers(-1, 2**64), json_values),
                "delay": st.one_of(st.floats(-1, 0.01), json_values),
                "fail_at": st.one_of(st.integers(-2, 3), json_values)}))
        elif kind == "set":
            hdr[draw(st.one_of(st.sampled_from(known), st.text(max_size=6)))] = draw(json_values)
        elif kind == "drop" and hdr:
            hdr.pop(draw(st.sampled_from(sorted(hdr))))
        elif kind == "version":
            hdr["v"] = draw(st.sampled_from([0, 2, 1.0, True, "1", None, [1], 1e400, 10**30]))
        elif kind == "type":
            hdr["type"] = draw(st.one_of(st.sampled_from(sorted(messages.CLIENT_TYPES | messages.SERVER_TYPES)),
                                         json_values))
        elif kind == "desc" and bufs:
            i = draw(st.integers(0, len(bufs) - 1))
            d = dict(bufs[i][0]) if isinstance(bufs[i][0], dict) else {}
            d[draw(st.sampled_from(["name", "dtype", "shape", "extra"]))] = draw(
                st.one_of(json_values, st.sampled_from([["float32"], {"a": 1}, [2**31], [True], "K"])))
            bufs[i] = (d, bufs[i][1])
        elif kind == "payload" and bufs:
            i = draw(st.integers(0, len(bufs) - 1))
            d, p = bufs[i]
            cut = draw(st.integers(-8, 8))
            bufs[i] = (d, p[:cut] if cut < 0 else p + bytes(cut))
        elif kind == "frames":
            if bufs and draw(st.booleans()):
                bufs.pop(draw(st.integers(0, len(bufs) - 1)))
            else:
                bufs.append(draw(buffer()))
        elif kind == "raw":
            raw_edit = draw(st.sampled_from(["truncate", "flip", "nest", "nan", "bom"]))
    out = _frames(hdr, bufs)
    if raw_edit == "truncate":
        out[0] = out[0][:draw(st.integers(0, max(0, len(out[0]) - 1)))]
    elif raw_edit == "flip" and out[0]:
        i = draw(st.integers(0, len(out[0]) - 1))
        out[0] = out[0][:i] + bytes([out[0][i] ^ draw(st.integers(1, 255))]) + out[0][i + 1:]
    elif raw_edit == "nest":
        depth = draw(st.sampled_from([31, 33, 200, 5000]))
        out[0] = out[0][:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    elif raw_edit == "nan":
        out[0] = out[0][:-1] + b',"t":' + draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400"])) + b"}"
    elif raw_edit == "bom":
        out[0] = b"\xef\xbb\xbf" + out[0]
    return out


raw = st.one_of(
    st.lists(st.binary(max_size=64), min_size=1, max_size=4),
    st.tuples(json_values.map(lambda v: json.dumps(v).encode()), st.lists(st.binary(max_size=32), max_size=2))
      .map(lambda t: [t[0], *t[1]]),
)



@st.composite
def job_run(draw):
    """A whole job's input in order (frames 0..n-1, end_input), with one message
    repeated, dropped, swapped or replaced by a hostile one: flow control,
    duplicates and missing frames, while the engine runs. The example's job has
    3 or 6 frames and a window of 4, so 6 frames sent at once exceed the credit."""
    n = draw(st.sampled_from([3, 6]))
    run = [codec.encode(messages.Frame(job=JOB, index=i), _valid_frame_arrays(i)) for i in range(n)]
    run.append(codec.encode(messages.EndInput(job=JOB)))
    run = [[bytes(f) for f in m] for m in run]
    i = draw(st.integers(0, len(run) - 1))
    op = draw(st.sampled_from(["none", "repeat", "drop", "swap", "replace"]))
    if op == "repeat":
        run.insert(i, run[i])
    elif op == "drop":
        run.pop(i)
    elif op == "swap" and i + 1 < len(run):
        run[i], run[i + 1] = run[i + 1], run[i]
    elif op == "replace":
        run[i] = draw(st.one_of(mutated(), generated))
    return run


# One example: the frame count of a job to open first (0: none), then hostile messages
# (one to four, or a whole job's input).
examples = st.tuples(st.sampled_from([0, 3, 3, 6]), st.one_of(
    st.lists(st.one_of(mutated(), mutated(), generated, raw), min_size=1, max_size=4), job_run()))


def substitute_job(frames: list[bytes], job_id: str) -> list[bytes]:
    """Put the example's job id where the strategies wrote ``JOB``."""
    if frames and JOB.encode() in frames[0]:
        return [frames[0].replace(JOB.encode(), job_id.encode()), *frames[1:]]
    return frames
