"""Wire protocol v1: encode/decode round trips and the checks decode makes."""
import json

import numpy as np
import pytest

from blender_addon.core import conventions
from blender_addon.core import protocol as P


def test_round_trip_keeps_header_and_arrays_bit_exact():
    arrays = {
        "environment": np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3),
        "scene_depth": np.linspace(0, conventions.NO_SURFACE_DEPTH, 20, dtype=np.float32).reshape(4, 5),
        "keypoints": np.ones((conventions.NUM_KEYPOINTS, 4), np.float32),
        "empty": np.zeros((0, 3), np.uint16),
    }
    frames = P.encode(P.header(P.FRAME, job="abc", index=3), arrays)
    hdr, out = P.decode([bytes(f) for f in frames], allowed_types=P.CLIENT_TYPES)
    assert hdr["type"] == P.FRAME and hdr["index"] == 3 and hdr["v"] == P.PROTOCOL_VERSION
    assert list(out) == list(arrays)
    for k, a in arrays.items():
        assert out[k].dtype == a.dtype and out[k].shape == a.shape and np.array_equal(out[k], a)


def test_big_endian_and_strided_arrays_are_normalised():
    a = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    hdr, out = P.decode(P.encode(P.header(P.RESULT), {"x": a}))
    assert out["x"].dtype == np.dtype("<f4") and np.array_equal(out["x"], a)


def test_unsupported_dtype_is_refused_on_encode():
    with pytest.raises(ValueError, match="float64"):
        P.encode(P.header(P.FRAME), {"x": np.zeros(3, np.float64)})


def _raw(hdr, *payload):
    return [json.dumps(hdr).encode(), *payload]


@pytest.mark.parametrize("frames, code, field", [
    ([b"\xff\xfe"], P.E_BAD_JSON, None),
    ([b"[1, 2]"], P.E_BAD_HEADER, None),
    (_raw({"v": 99, "type": "ping"}), P.E_BAD_VERSION, "v"),
    (_raw({"v": 1, "type": "bogus"}), P.E_UNKNOWN_TYPE, "type"),
    (_raw({"v": 1, "type": "frame", "buffers": [{"name": "a", "dtype": "uint8", "shape": [2]}]}),
     P.E_BAD_BUFFERS, "buffers"),
    (_raw({"v": 1, "type": "frame", "buffers": [{"name": "a", "dtype": "uint8", "shape": [3]}]}, b"xx"),
     P.E_BAD_BUFFERS, "buffers.a"),
    (_raw({"v": 1, "type": "frame", "buffers": [{"name": "a", "dtype": "float64", "shape": [1]}]}, b"x" * 8),
     P.E_BAD_DTYPE, "buffers.a"),
    (_raw({"v": 1, "type": "frame", "buffers": [{"name": "a", "dtype": "float32", "shape": [1]}]},
          np.array([np.nan], np.float32).tobytes()), P.E_NOT_FINITE, "buffers.a"),
    (_raw({"v": 1, "type": "frame", "buffers": [{"name": "a", "dtype": "uint8", "shape": [-1]}]}, b""),
     P.E_BAD_SHAPE, "buffers.a"),
])
def test_decode_names_what_is_wrong(frames, code, field):
    with pytest.raises(P.ProtocolError) as info:
        P.decode(frames, allowed_types=P.CLIENT_TYPES)
    assert info.value.code == code and info.value.field == field
    assert info.value.message


def test_decode_enforces_total_size():
    frames = P.encode(P.header(P.FRAME), {"a": np.zeros(1000, np.uint8)})
    with pytest.raises(P.ProtocolError) as info:
        P.decode(frames, max_bytes=500)
    assert info.value.code == P.E_TOO_LARGE


def test_frame_inputs_checked_against_resolution():
    ok = {"environment": np.zeros((8, 10, 3), np.uint8), "character_mask": np.zeros((8, 10), np.uint8)}
    P.check_frame_inputs(ok, height=8, width=10)
    with pytest.raises(P.ProtocolError) as info:
        P.check_frame_inputs({"environment": np.zeros((10, 8, 3), np.uint8)}, height=8, width=10)
    assert info.value.code == P.E_BAD_SHAPE and info.value.field == "frame.environment"


def test_jobspec_round_trip_and_params():
    spec = P.JobSpec("echo", 64, 32, 5, params={"seed": 3}, objects=["cup"], name="shot")
    back = P.JobSpec.from_header(spec.to_header())
    assert back == spec
    specs = (*P.COMMON_PARAMS, P.ParamSpec("delay", "float", 0.0, 0.0, 1.0))
    assert P.validate_params(specs, {"delay": 0.5}) == {"seed": 0, "delay": 0.5}
    with pytest.raises(P.ProtocolError, match="params.delay"):
        P.validate_params(specs, {"delay": 5})
    with pytest.raises(P.ProtocolError) as info:
        P.validate_params(specs, {"nope": 1})
    assert info.value.code == P.E_UNKNOWN_PARAM


# -- typed messages -------------------------------------------------------------------
from blender_addon.core import messages as M  # noqa: E402

SAMPLES = [
    M.Hello(), M.Ping(t=1.5), M.Frame(job="j", index=2), M.EndInput(job="j"), M.Cancel(job="j"),
    M.Info(server_version="0.1", protocol_version=1, engines=[{"name": "echo"}], device="cpu", worker_devices=["cpu"],
           limits=dict(P.DEFAULT_LIMITS), concurrent_jobs=1, queue={"running": 0}, clients=0, torch_imported=False,
           frames_held=0, bytes_held=0),
    M.Pong(t=None), M.Accepted(job="j", request="r", credit=4, window=4, queue_position=0, streaming=True),
    M.Credit(job="j", upto=8), M.Progress(job="j", stage="generating", fraction=0.5, eta_s=2.0, credit=6),
    M.Result(job="j", index=1), M.Done(job="j", frames=3, seconds=1.5), M.Cancelled(job="j"),
    M.Error(P.E_BUSY, "full", request="r"),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.TYPE)
def test_every_message_round_trips_through_the_wire(msg):
    hdr, _ = P.decode(P.encode(msg))
    assert M.parse(hdr) == msg
    assert list(hdr)[:2] == ["v", "type"]


def test_a_field_of_the_wrong_type_or_missing_is_named():
    with pytest.raises(P.ProtocolError) as info:
        M.parse({"v": 1, "type": "frame", "job": "j", "index": "3"})
    assert (info.value.code, info.value.field, info.value.job) == (P.E_BAD_INDEX, "frame.index", "j")
    with pytest.raises(P.ProtocolError) as info:
        M.parse({"v": 1, "type": "credit", "job": "j"})
    assert (info.value.code, info.value.field) == (P.E_BAD_HEADER, "credit.upto")
    with pytest.raises(P.ProtocolError, match="finite"):
        M.parse({"v": 1, "type": "progress", "job": "j", "stage": "x", "fraction": float("nan")})
    # Fields this side does not know are ignored (optional fields may be added within a version).
    assert M.parse({"v": 1, "type": "credit", "job": "j", "upto": 3, "later": 1}) == M.Credit(job="j", upto=3)


def test_optional_fields_are_left_out_only_where_declared():
    assert "credit" not in M.Result(job="j", index=0).to_dict()
    assert M.Progress(job="j", stage="s", fraction=0.0).to_dict()["eta_s"] is None
    assert "request" not in M.Error(P.E_BUSY, "x").to_dict() and M.Error(P.E_BUSY, "x").to_dict()["job"] is None


def test_echo_and_clip_bound_client_text():
    assert len(M.echo("x" * 10_000)) <= M.ECHO_CHARS and len(M.echo([["a" * 1000] * 1000] * 1000)) <= M.ECHO_CHARS
    assert "\\x00" in M.echo("a\x00b")
    assert M.clip("ok_name") == "ok_name" and M.clip("n\x00" + "y" * 500) == "n\\x00" + "y" * 62


def test_errors_are_described_by_type():
    from blender_addon.core import client, jobs
    from blender_addon.core.address import AddressError
    addr = "tcp://127.0.0.1:1"
    assert jobs.describe_error(client.HandshakeRefused("the server refused this key"), addr) == \
        "The server refused this key."   # a ServerUnreachable, but its own words win
    assert jobs.describe_error(client.ServerUnreachable("x"), addr).startswith("Cannot reach the Inhabit server")
    assert jobs.describe_error(AddressError("bad address 'x'"), addr) == "Bad address 'x'."
    assert jobs.describe_error(client.JobFailed(P.E_BAD_PARAM, "no"), addr).startswith("The server refused the job")

    class Renamed(client.ServerTimeout):   # a subclass is matched by type, whatever its name
        pass
    assert "stopped answering" in jobs.describe_error(Renamed("10 s"), addr)
    assert jobs.describe_error(KeyError("k"), addr) == "KeyError: 'k'"
