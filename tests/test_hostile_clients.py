"""Messages that once stopped or confused the server, kept as regression cases,
against a real ``inhabit serve`` over a real socket: each gets one ERROR naming
what is wrong, client strings come back and into the log cut and escaped, a
server bug on one message is that message's ``internal_error``, and refused
CurveZMQ handshakes are logged once per peer and interval."""
from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest
import zmq

from backend.server import handshakes
from blender_addon.core import codec, logs, messages
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, JobFailed, ServerUnreachable, run_job
from tests.cli import inhabit
from tests.serverproc import free_port, start_server

REF = np.full((16, 16, 3), 128, np.uint8)
ENGINES = ("tests.engines_for_tests:EchoEngine", "tests.engines_for_tests:BuggyEngine")


@pytest.fixture(scope="module")
def server():
    with start_server(ENGINES) as srv:
        yield srv


@pytest.fixture
def sock(server):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.linger = 0
    s.connect(server.address)
    yield s
    s.close(0)


def reply(sock, timeout=5.0) -> dict:
    assert sock.poll(int(timeout * 1000)), "no reply"
    hdr, _ = P.decode(sock.recv_multipart(), allowed_types=P.SERVER_TYPES)
    messages.parse(hdr)  # every reply is a well-formed server message
    return hdr


def _hdr(**fields) -> bytes:
    return json.dumps({"v": 1, **fields}).encode()


NESTED = b'{"v":1,"type":"ping","t":' + b"[" * 1000 + b"]" * 1000 + b"}"
# (frames, code, field): each was a crash, a silent acceptance or an error without a field.
CRASHERS = {
    "dtype is a list": ([_hdr(type="hello", buffers=[{"name": "a", "dtype": ["float32"], "shape": [4, 4]}]),
                         b"\0" * 64], P.E_BAD_DTYPE, "buffers.a"),
    "dtype is an object": ([_hdr(type="hello", buffers=[{"name": "a", "dtype": {"x": 1}, "shape": [4]}]), b"\0" * 4],
                           P.E_BAD_DTYPE, "buffers.a"),
    "nested 1000 deep": ([NESTED], P.E_BAD_JSON, None),
    "nested 40 deep": ([b'{"v":1,"type":"ping","x":' + b"[" * 40 + b"]" * 40 + b"}"], P.E_BAD_JSON, None),
    "NaN t in ping": ([b'{"v":1,"type":"ping","t":NaN}'], P.E_BAD_JSON, None),
    "number overflowing to inf": ([b'{"v":1,"type":"ping","t":1e400}'], P.E_BAD_JSON, None),
    "t is a string": ([_hdr(type="ping", t="now")], P.E_BAD_HEADER, "ping.t"),
    "v is 1.0": ([b'{"v":1.0,"type":"hello"}'], P.E_BAD_VERSION, "v"),
    "v is true": ([b'{"v":true,"type":"hello"}'], P.E_BAD_VERSION, "v"),
    "shape holds a bool": ([_hdr(type="hello", buffers=[{"name": "a", "dtype": "uint8", "shape": [True]}]), b"\0"],
                           P.E_BAD_SHAPE, "buffers.a"),
    "buffer name is a number": ([_hdr(type="hello", buffers=[{"name": 7, "dtype": "uint8", "shape": [1]}]), b"\0"],
                                P.E_BAD_BUFFERS, "buffers[0]"),
    "frame index is a float": ([_hdr(type="frame", job="x", index=1.5)], P.E_BAD_INDEX, "frame.index"),
    "job is a list": ([_hdr(type="cancel", job=["x"])], P.E_BAD_HEADER, "cancel.job"),
    "header over 64 KiB": ([_hdr(type="ping", pad="x" * 70_000)], P.E_TOO_LARGE, None),
}


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_crasher_gets_one_named_error_and_the_server_goes_on(server, sock, name):
    frames, code, field = CRASHERS[name]
    sock.send_multipart(frames)
    hdr = reply(sock)
    assert (hdr["type"], hdr["code"], hdr["field"]) == ("error", code, field), hdr
    sock.send_multipart(P.encode(messages.Hello()))
    assert reply(sock)["type"] == P.INFO
    assert server.proc.poll() is None


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_decode_raises_only_protocol_errors(name):
    frames, code, field = CRASHERS[name]
    with pytest.raises(P.ProtocolError) as info:
        hdr, _ = P.decode(frames, allowed_types=P.CLIENT_TYPES, max_header_bytes=P.DEFAULT_LIMITS["max_header_bytes"])
        messages.parse(hdr)
    assert (info.value.code, info.value.field) == (code, field)


def test_client_strings_come_back_and_into_the_log_cut_and_escaped(server, sock):
    name = "n\x00" + "x" * 50_000
    sock.send_multipart([_hdr(type="hello", buffers=[{"name": name, "dtype": "float64", "shape": [1]}]), b"\0" * 8])
    hdr = reply(sock)
    assert hdr["code"] == P.E_BAD_DTYPE
    assert len(hdr["message"]) < 300 and len(hdr["field"]) < 100 and "\x00" not in hdr["field"] + hdr["message"]
    # A SUBMIT's shot name goes into the server log: cut, escaped, on one line.
    sock.send_multipart(P.encode(messages.JobSpec("echo", 16, 16, 1, name="shot\x00\n" + "y" * 50_000,
                                                  request="long-name"), {P.REFERENCE: REF}))
    hdr = reply(sock)
    assert hdr["type"] == P.ACCEPTED
    sock.send_multipart(P.encode(messages.Cancel(job=hdr["job"])))
    assert reply(sock)["type"] == P.CANCELLED
    line = next(ln for ln in server.wait_for_log(f"submitted job={hdr['job']}").splitlines()
                if f"submitted job={hdr['job']}" in ln)
    assert len(line) < 1000 and "\x00" not in line and "shot\\x00\\n" in line and "(+" in line


def test_a_bug_on_one_message_is_its_internal_error_and_service_goes_on(server):
    with Client(server.address) as cl:
        with pytest.raises(JobFailed) as info:
            run_job(cl, P.JobSpec("buggy", 16, 16, 1, params={"fail_at": 0}), REF, iter(()), timeout=10)
        assert info.value.code == P.E_INTERNAL, info.value
        frames = ((i, {"environment": np.zeros((16, 16, 3), np.uint8),
                       "character_mask": np.zeros((16, 16), np.uint8)}) for i in range(2))
        assert run_job(cl, P.JobSpec("buggy", 16, 16, 2), REF, frames, timeout=20)[-1].type == P.DONE
    log = server.wait_for_log("internal_error")
    assert "KeyError" in log and server.proc.poll() is None


def test_refused_handshakes_are_logged_once_per_peer_and_interval(tmp_path):
    import zmq.auth
    assert inhabit("keys", "generate", str(tmp_path / "k")).returncode == 0
    assert inhabit("keys", "generate", str(tmp_path / "other"), "--name", "client").returncode == 0
    k, other = tmp_path / "k", tmp_path / "other"
    port = free_port()
    with start_server(ENGINES[:1], address=f"tcp://0.0.0.0:{port}", wait=False,
                      extra_args=("--curve-secret-key", k / "server.key_secret",
                                  "--allow-client-key", k / "client.key")) as srv:
        srv.wait_for_log("listening", timeout=20)
        server_pub, _ = zmq.auth.load_certificate(str(k / "server.key"))
        intruder = zmq.auth.load_certificate(str(other / "client.key_secret"))
        addr = f"tcp://127.0.0.1:{port}"
        for _ in range(6):   # a client with a wrong key, reconnecting
            with Client(addr, timeout=0.3, curve_server_public_key=server_pub, curve_client_keys=intruder) as cl:
                with pytest.raises(ServerUnreachable):
                    cl.info()
        for _ in range(4):   # plain-text clients from the same host
            with Client(addr, timeout=0.3) as cl:
                with pytest.raises(ServerUnreachable):
                    cl.info()
        time.sleep(0.5)
        lines = [ln for ln in srv.log().splitlines() if "handshake_refused" in ln]
    # Ten or more refusals from one host within the interval: the first of each peer is logged, the rest
    # are counted (a plain-text client that is gone before the monitor reads its address is peer "?").
    peers = [ln.split("peer=")[1].split()[0] for ln in lines]
    assert len(peers) == len(set(peers)) <= 2 and peers[0] == "127.0.0.1", lines


def test_refusal_log_counts_what_it_does_not_write(caplog):
    refusals = handshakes.RefusalLog(interval_s=0.2)
    with caplog.at_level(logging.INFO, logger=logs.ROOT):
        for port in range(5):
            refusals.note(f"10.0.0.1:{4000 + port}", reason="client_key_not_allowed")
        refusals.note("[::1]:4000", reason="plain_text_or_wrong_server_key")
        refusals.flush()                      # the interval is not over: nothing more
        time.sleep(0.25)
        refusals.flush()
    lines = [r.getMessage() for r in caplog.records if "handshake_refused" in r.getMessage()]
    assert lines[0] == "handshake_refused peer=10.0.0.1:4000 reason=client_key_not_allowed"
    assert lines[1] == "handshake_refused peer=[::1]:4000 reason=plain_text_or_wrong_server_key"
    assert len(lines) == 3 and lines[2].startswith("handshake_refused peer=10.0.0.1 count=4 seconds=")


def test_encode_of_a_typed_message_is_the_bytes_of_the_old_literal_header():
    """The wire is unchanged: a typed header encodes to the bytes the literal dicts gave."""
    old = codec.header(P.PROGRESS, job="j", stage="generating", fraction=0.5, frame=3, step=1, steps=2,
                       eta_s=1.25, frames_done=3, frames=8)
    new = messages.Progress(job="j", stage="generating", fraction=0.5, frame=3, step=1, steps=2, eta_s=1.25,
                            frames_done=3, frames=8)
    assert codec.encode(new) == codec.encode(old)
    assert codec.encode(messages.Result(job="j", index=2, credit=6)) == codec.encode(
        codec.header(P.RESULT, job="j", index=2, credit=6))
    assert codec.encode(messages.Error(P.E_BUSY, "full")) == codec.encode(
        codec.header(P.ERROR, code=P.E_BUSY, message="full", job=None, field=None))
    for cls in messages.MESSAGES.values():
        assert cls.TYPE in P.CLIENT_TYPES | P.SERVER_TYPES
