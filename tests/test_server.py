"""The server over real sockets between real processes: job life cycle, flow
control, cancel, isolation, client death, shutdown, bad input, CurveZMQ, CLI."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from blender_addon.core import protocol as P
from blender_addon.core.client import Client, JobFailed, ServerUnreachable, run_job
from tests import serverproc
from tests.cli import inhabit
from tests.serverproc import REPO_ROOT, start_server

ENGINES = ("tests.engines_for_tests:EchoEngine", "tests.engines_for_tests:BatchEchoEngine",
           "tests.engines_for_tests:HoardEngine", "tests.engines_for_tests:ExclusiveEngine")
MAX_BYTES = 200_000
H = W = 16


@pytest.fixture(scope="module")
def server():
    with start_server(ENGINES, extra_args=("--max-message-bytes", MAX_BYTES, "--workers", 2)) as srv:
        yield srv


def frame_arrays(i, h=H, w=W):
    env = np.full((h, w, 3), (10 * i) % 250, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    return {"environment": env, "character_mask": mask,
            "scene_depth": np.full((h, w), 3.0, np.float32)}


REF = np.full((16, 16, 3), 128, np.uint8)


def spec(frames=4, engine="echo", **params):
    return P.JobSpec(engine, W, H, frames, params=params)


# -- raw-socket helpers for messages the Client would never send ----------------------------
class Raw:
    def __init__(self, address):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(address)

    def send(self, frames):
        self.sock.send_multipart(frames)

    def send_msg(self, hdr, arrays=None):
        self.send(P.encode(hdr, arrays))

    def recv(self, timeout=5.0, skip=(P.PROGRESS, P.CREDIT, P.PONG)):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sock.poll(50):
                hdr, arrays = P.decode(self.sock.recv_multipart())
                if hdr["type"] not in skip:
                    return hdr, arrays
        raise AssertionError("no reply from the server")

    def submit(self, frames=3, engine="echo", **params):
        self.send_msg(spec(frames, engine, **params).to_header(), {P.REFERENCE: REF})
        hdr, _ = self.recv()
        assert hdr["type"] == P.ACCEPTED, hdr
        return hdr

    def close(self):
        self.sock.close(0)


def _expect_error(raw, code, field):
    hdr, _ = raw.recv()
    assert hdr["type"] == P.ERROR, hdr
    assert hdr["code"] == code, hdr
    if field is not None:
        assert hdr["field"] == field, hdr
    assert hdr["message"]
    return hdr


def _drive(*pairs, timeout=10.0):
    """Stream each (client, job)'s frames as its credit allows, end its input,
    and poll until every job has finished; returns each job's events."""
    events = [[] for _ in pairs]
    deadline = time.monotonic() + timeout
    while not all(job.finished for _, job in pairs) and time.monotonic() < deadline:
        for k, (cl, job) in enumerate(pairs):
            while job.can_send():
                job.send_frame(job.next_index, frame_arrays(job.next_index))
            if job.next_index == job.spec.frames and job.state == "accepted" and not job.input_ended:
                job.end_input()
            events[k] += cl.poll(0.02)
    return events


def _serves_a_job(address):
    with Client(address) as cl:
        events = run_job(cl, spec(3), REF, ((i, frame_arrays(i)) for i in range(3)), timeout=10)
    assert events[-1].type == P.DONE
    assert sorted(e.header["index"] for e in events if e.type == P.RESULT) == [0, 1, 2]


# -- life cycle -------------------------------------------------------------------------------
def test_job_streams_results_progress_credit_and_done(server):
    seen = []
    with Client(server.address) as cl:
        n = 8
        events = run_job(cl, spec(n, delay=0.02), REF, ((i, frame_arrays(i)) for i in range(n)),
                         on_event=seen.append, timeout=10)
    types = [e.type for e in events]
    assert types[0] == P.ACCEPTED and types[-1] == P.DONE
    accepted = events[0].header
    assert accepted["credit"] == 4 and accepted["queue_position"] == 0
    # The window slid: credit grew to all 8 frames through a window of 4, in CREDIT
    # messages or riding on results.
    grants = [e.header.get("upto") if e.type == P.CREDIT else e.header.get("credit") for e in events]
    assert max(g for g in grants if g is not None) == n
    results = {e.header["index"]: e.arrays for e in events if e.type == P.RESULT}
    assert sorted(results) == list(range(n))
    for i, arrays in results.items():
        sent = frame_arrays(i)
        assert arrays["rgba"].shape == (H, W, 4) and (arrays["rgba"][..., 3] == 255).all()
        assert np.array_equal(arrays["matte"], sent["character_mask"])
        outside = sent["character_mask"] == 0
        assert np.array_equal(arrays["rgba"][..., :3][outside], sent["environment"][outside])
        assert not np.array_equal(arrays["rgba"][..., :3][~outside], sent["environment"][~outside])
    progress = [e.header for e in events if e.type == P.PROGRESS]
    assert progress and progress[-1]["fraction"] == 1.0
    assert any(p.get("eta_s") is not None for p in progress)
    assert events[-1].header["frames"] == n
    assert seen == events
    log = server.wait_for_log("done job=" + events[0].header["job"])
    for word in ("submitted", "accepted", "started"):
        assert f"{word} job={events[0].header['job']}" in log


def test_credit_reaches_a_client_while_the_engine_waits_for_input(server):
    """Credit normally rides on results; an engine that reads ahead without
    emitting still gets its frames, because waiting for input sends the credit."""
    with Client(server.address) as cl:
        n = 10
        events = run_job(cl, spec(n, engine="hoard"), REF, ((i, frame_arrays(i)) for i in range(n)), timeout=10)
    assert events[0].header["credit"] == 8
    assert events[-1].type == P.DONE
    assert sorted(e.header["index"] for e in events if e.type == P.RESULT) == list(range(n))
    credits = [e.header["upto"] for e in events if e.type == P.CREDIT]
    assert credits and credits[-1] == n  # no result carried the last of it


def test_non_streaming_engine_waits_for_end_input(server):
    raw = Raw(server.address)
    try:
        acc = raw.submit(frames=3, engine="batch_echo")
        assert acc["credit"] == 3 and acc["streaming"] is False
        for i in range(3):
            raw.send_msg(P.header(P.FRAME, job=acc["job"], index=i), frame_arrays(i))
        time.sleep(0.2)
        assert not raw.sock.poll(0) or raw.recv(0.2, skip=(P.PONG,))[0]["type"] != P.RESULT
        raw.send_msg(P.header(P.END_INPUT, job=acc["job"]))
        got = [raw.recv()[0] for _ in range(4)]
        assert [h["type"] for h in got] == [P.RESULT] * 3 + [P.DONE]
    finally:
        raw.close()


def test_cancel_lands_within_one_step(server):
    with Client(server.address) as cl:
        job = cl.submit(spec(20, delay=0.3), REF)
        t_cancel = None
        deadline = time.monotonic() + 10
        sent = 0
        while time.monotonic() < deadline and not job.finished:
            while job.can_send():
                job.send_frame(sent, frame_arrays(sent))
                sent += 1
            for ev in cl.poll(0.02):
                if ev.type == P.RESULT and t_cancel is None:
                    job.cancel()
                    t_cancel = time.monotonic()
        assert job.state == "cancelled"
        assert time.monotonic() - t_cancel < 1.0
    server.wait_for_log(f"cancelled job={job.job_id}")
    _serves_a_job(server.address)


def test_engine_failure_is_that_jobs_error_only(server):
    with Client(server.address) as cl:
        with pytest.raises(JobFailed) as info:
            run_job(cl, spec(3, fail_at=1), REF, ((i, frame_arrays(i)) for i in range(3)), timeout=10)
    assert info.value.code == P.E_ENGINE_FAILED and "fail at frame 1" in info.value.message
    _serves_a_job(server.address)


def test_two_clients_see_only_their_own_jobs(server):
    a, b = Client(server.address), Client(server.address)
    try:
        job_a = a.submit(spec(4, delay=0.05), REF)
        while job_a.job_id is None:
            a.poll(0.05)
        # B cannot cancel A's job: for B it does not exist.
        raw = Raw(server.address)
        raw.send_msg(P.header(P.CANCEL, job=job_a.job_id))
        _expect_error(raw, P.E_UNKNOWN_JOB, "cancel.job")
        raw.close()
        events_b = run_job(b, spec(2), REF, ((i, frame_arrays(i)) for i in range(2)), timeout=10)
        assert all(e.job is None or e.job.request != job_a.request for e in events_b)
        [events_a] = _drive((a, job_a))
        assert job_a.state == "done"
        assert {e.header.get("job") for e in events_a} == {job_a.job_id}
    finally:
        a.close()
        b.close()


def test_workers_are_spread_over_the_gpus():
    from backend.server.app import ServerConfig
    assert [ServerConfig(device="cuda", gpus=2, workers=3).worker_device(n) for n in range(3)] == \
        ["cuda:0", "cuda:1", "cuda:0"]
    assert ServerConfig(device="cpu", workers=2).worker_device(1) == "cpu"


def test_concurrent_jobs_each_get_their_own_engine_instance(server):
    """--workers 2: two jobs run at the same time, each on its worker's own
    instance (the engine fails a job that shares an instance with another)."""
    clients = [Client(server.address), Client(server.address)]
    try:
        jobs = [cl.submit(spec(4, engine="exclusive", delay=0.15), REF) for cl in clients]
        _drive(*zip(clients, jobs), timeout=20)
        assert [j.state for j in jobs] == ["done", "done"], [j.error for j in jobs]
        log = server.wait_for_log("done job=" + jobs[1].job_id)
        loads = [line for line in log.splitlines() if "engine_loaded" in line and "engine=exclusive" in line]
        assert len(loads) == 2, loads  # one instance per worker
        # They overlapped: both had started before either finished.
        assert min(log.index(f"done job={j.job_id}") for j in jobs) > \
            max(log.index(f"started job={j.job_id}") for j in jobs)
    finally:
        for cl in clients:
            cl.close()


# -- bad input: each gets an ERROR naming the field, and the server keeps serving ------------------
def _hdr(**kw):
    return json.dumps({"v": 1, **kw}).encode()


BAD_MESSAGES = [
    ("not json", [b"\x00not json"], P.E_BAD_JSON, None),
    ("header not object", [b"[1,2,3]"], P.E_BAD_HEADER, None),
    ("unknown type", [_hdr(type="dance")], P.E_UNKNOWN_TYPE, "type"),
    ("wrong v", [json.dumps({"v": 2, "type": "hello"}).encode()], P.E_BAD_VERSION, "v"),
    ("buffer count", [_hdr(type="ping", buffers=[{"name": "a", "dtype": "uint8", "shape": [1]}])],
     P.E_BAD_BUFFERS, "buffers"),
    ("byte length", [_hdr(type="ping", buffers=[{"name": "a", "dtype": "uint8", "shape": [4]}]), b"abc"],
     P.E_BAD_BUFFERS, "buffers.a"),
    ("dtype", [_hdr(type="ping", buffers=[{"name": "a", "dtype": "complex64", "shape": [1]}]), b"12345678"],
     P.E_BAD_DTYPE, "buffers.a"),
    ("too large", [_hdr(type="ping"), b"x" * (MAX_BYTES // 2), b"y" * (MAX_BYTES // 2)], P.E_TOO_LARGE, None),
    ("unknown engine", P.encode(P.JobSpec("nope", 16, 16, 2).to_header(), {P.REFERENCE: REF}),
     P.E_UNKNOWN_ENGINE, "submit.engine"),
    ("unknown param", P.encode(spec(2, speed=3).to_header(), {P.REFERENCE: REF}), P.E_UNKNOWN_PARAM, "params.speed"),
    ("param range", P.encode(spec(2, delay=-1.0).to_header(), {P.REFERENCE: REF}), P.E_BAD_PARAM, "params.delay"),
    ("frames over limit", P.encode(P.JobSpec("echo", 16, 16, 10**6).to_header(), {P.REFERENCE: REF}),
     P.E_TOO_LARGE, "submit.frames"),
    ("missing reference", P.encode(spec(2).to_header()), P.E_MISSING_INPUT, "submit.reference"),
    ("cancel unknown job", P.encode(P.header(P.CANCEL, job="0123456789abcdef")), P.E_UNKNOWN_JOB, "cancel.job"),
]


@pytest.mark.parametrize("name, frames, code, field", BAD_MESSAGES, ids=[m[0] for m in BAD_MESSAGES])
def test_bad_message_gets_named_error(server, name, frames, code, field):
    raw = Raw(server.address)
    try:
        raw.send([bytes(f) for f in frames])
        _expect_error(raw, code, field)
        raw.send_msg(P.header(P.HELLO))  # same connection still served
        assert raw.recv()[0]["type"] == P.INFO
    finally:
        raw.close()


def _bad_frame_cases():
    nan_depth = frame_arrays(0)
    nan_depth["scene_depth"] = nan_depth["scene_depth"].copy()
    nan_depth["scene_depth"][3, 3] = np.nan
    no_mask = {"environment": frame_arrays(0)["environment"]}
    return [
        ("wrong shape", 0, frame_arrays(0, h=8), P.E_BAD_SHAPE, "frame.environment"),
        ("nan", 0, nan_depth, P.E_NOT_FINITE, None),
        ("index out of range", 7, frame_arrays(0), P.E_BAD_INDEX, "frame.index"),
        ("beyond credit", 5, frame_arrays(0), P.E_WINDOW_EXCEEDED, "frame.index"),
        ("missing required input", 0, no_mask, P.E_MISSING_INPUT, "frame.character_mask"),
    ]


@pytest.mark.parametrize("name, index, arrays, code, field", _bad_frame_cases(), ids=[c[0] for c in _bad_frame_cases()])
def test_bad_frame_fails_its_job_with_named_error(server, name, index, arrays, code, field):
    raw = Raw(server.address)
    try:
        frames = 7 if code == P.E_WINDOW_EXCEEDED else 3
        job = raw.submit(frames=frames, delay=0.5)["job"]
        raw.send_msg(P.header(P.FRAME, job=job, index=index), arrays)
        hdr = _expect_error(raw, code, field)
        assert hdr["job"] == job
        if code == P.E_NOT_FINITE:
            assert hdr["field"].endswith("scene_depth")
    finally:
        raw.close()
    _serves_a_job(server.address)


def test_repeated_frame_and_early_end_input(server):
    raw = Raw(server.address)
    try:
        job = raw.submit(frames=3, delay=1.0)["job"]
        raw.send_msg(P.header(P.FRAME, job=job, index=0), frame_arrays(0))
        raw.send_msg(P.header(P.FRAME, job=job, index=0), frame_arrays(0))
        _expect_error(raw, P.E_DUPLICATE_FRAME, "frame.index")
        job = raw.submit(frames=3, engine="batch_echo")["job"]
        raw.send_msg(P.header(P.FRAME, job=job, index=0), frame_arrays(0))
        raw.send_msg(P.header(P.END_INPUT, job=job))
        hdr = _expect_error(raw, P.E_MISSING_INPUT, "frames")
        assert "1-2" in hdr["message"]
    finally:
        raw.close()
    _serves_a_job(server.address)


def test_streaming_job_may_finish_before_end_input(server):
    """A streaming engine can emit its last result before the client's END_INPUT
    (or a late CANCEL) arrives: those are ignored, not answered unknown_job."""
    raw = Raw(server.address)
    try:
        job = raw.submit(frames=2)["job"]
        for i in range(2):
            raw.send_msg(P.header(P.FRAME, job=job, index=i), frame_arrays(i))
        seen = []
        while not seen or seen[-1]["type"] != P.DONE:
            hdr, _ = raw.recv()
            assert hdr["type"] in (P.RESULT, P.DONE), hdr
            seen.append(hdr)
        assert [h["index"] for h in seen if h["type"] == P.RESULT] == [0, 1]
        raw.send_msg(P.header(P.END_INPUT, job=job))
        raw.send_msg(P.header(P.CANCEL, job=job))
        raw.send_msg(P.header(P.HELLO))
        assert raw.recv()[0]["type"] == P.INFO  # nothing else was sent back first
    finally:
        raw.close()


# -- client death, shutdown -----------------------------------------------------------------
DYING_CLIENT = """
import os, sys, time, numpy as np
sys.path.insert(0, {root!r})
from blender_addon.core import protocol as P
from blender_addon.core.client import Client
cl = Client({address!r})
job = cl.submit(P.JobSpec("echo", 16, 16, 50, params={{"delay": 0.2}}), np.full((16, 16, 3), 60, np.uint8))
while job.job_id is None:
    cl.poll(0.05)
env = {{"environment": np.zeros((16, 16, 3), np.uint8), "character_mask": np.zeros((16, 16), np.uint8)}}
for i in range(4):
    job.send_frame(i, env)
time.sleep(0.3)
print(job.job_id, flush=True)
os._exit(0)  # dies without cancel or goodbye
"""


def test_silent_client_has_its_jobs_cancelled_and_memory_freed():
    with start_server(ENGINES[:1], extra_args=("--heartbeat-timeout", "1.0")) as srv:
        out = subprocess.run([sys.executable, "-c", DYING_CLIENT.format(root=str(REPO_ROOT), address=srv.address)],
                             capture_output=True, text=True, timeout=30)
        job_id = out.stdout.strip()
        assert len(job_id) == 16, out.stderr
        log = srv.wait_for_log(f"cancelled job={job_id}", timeout=10)
        assert "client_lost" in log and "reason=client_lost" in log
        with Client(srv.address) as cl:
            info = cl.info()
        assert info["queue"]["open_jobs"] == 0 and info["frames_held"] == 0


def test_a_job_short_of_its_first_frames_does_not_hold_the_only_worker():
    """--workers 1: a streaming job whose first window is still being rendered
    stays queued, and a later job whose input is all there runs meanwhile."""
    with start_server(ENGINES[:2], extra_args=("--workers", 1)) as srv:
        with Client(srv.address) as slow, Client(srv.address) as quick:
            early = slow.submit(spec(6), REF)  # echo: starts with 4 frames in
            while early.job_id is None:
                slow.poll(0.05)
            early.send_frame(0, frame_arrays(0))
            events = run_job(quick, spec(2, engine="batch_echo"), REF, ((i, frame_arrays(i)) for i in range(2)),
                             timeout=10)
            assert events[-1].type == P.DONE
            assert f"started job={early.job_id}" not in srv.log()
            _drive((slow, early))
            assert early.state == "done"


def test_sigterm_tells_clients_and_exits_cleanly():
    with start_server(ENGINES[:1]) as srv:
        with Client(srv.address) as cl:
            job = cl.submit(spec(10, delay=0.5), REF)
            while job.job_id is None:
                cl.poll(0.05)
            for i in range(4):  # the echo engine starts once its first window (4) is in
                job.send_frame(i, frame_arrays(i))
            srv.wait_for_log(f"started job={job.job_id}")
            srv.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while not job.finished and time.monotonic() < deadline:
                cl.poll(0.05)
            assert job.state == "failed" and job.error.code == P.E_SHUTDOWN
        assert srv.proc.wait(5) == 0
        assert "shutdown open_jobs=1" in srv.log()


# -- security ---------------------------------------------------------------------------
_cli = inhabit


def test_non_loopback_bind_needs_curve_keys():
    port = serverproc.free_port()
    out = _cli("serve", "--bind", f"tcp://0.0.0.0:{port}", "--engine", ENGINES[0])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "loopback" in lines[0] and "--curve-secret-key" in lines[0]


def test_curve_keys_admit_only_the_allowed_client(tmp_path):
    import zmq.auth
    assert _cli("keys", "generate", str(tmp_path / "k")).returncode == 0
    assert _cli("keys", "generate", str(tmp_path / "other"), "--name", "client").returncode == 0
    k, other = tmp_path / "k", tmp_path / "other"
    port = serverproc.free_port()
    with start_server(ENGINES[:1], address=f"tcp://0.0.0.0:{port}", wait=False,
                      extra_args=("--curve-secret-key", k / "server.key_secret",
                                  "--allow-client-key", k / "client.key")) as srv:
        server_pub, _ = zmq.auth.load_certificate(str(k / "server.key"))
        addr = f"tcp://127.0.0.1:{port}"
        good = zmq.auth.load_certificate(str(k / "client.key_secret"))
        deadline = time.monotonic() + 15
        while True:
            with Client(addr, timeout=0.5, curve_server_public_key=server_pub, curve_client_keys=good) as cl:
                try:
                    info = cl.info()
                    break
                except ServerUnreachable:
                    assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log()
        assert info["protocol_version"] == P.PROTOCOL_VERSION
        with Client(addr, curve_server_public_key=server_pub, curve_client_keys=good) as cl:
            assert run_job(cl, spec(2), REF, ((i, frame_arrays(i)) for i in range(2)))[-1].type == P.DONE
        intruder = zmq.auth.load_certificate(str(other / "client.key_secret"))
        with Client(addr, timeout=1.0, curve_server_public_key=server_pub, curve_client_keys=intruder) as cl:
            with pytest.raises(ServerUnreachable):
                cl.info()
        with Client(addr, timeout=1.0) as cl:  # plain text is refused too
            with pytest.raises(ServerUnreachable):
                cl.info()


# -- CLI --------------------------------------------------------------------------------
def test_info_cli_prints_json_and_fails_cleanly(server):
    out = _cli("info", "--server", server.address)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["protocol_version"] == P.PROTOCOL_VERSION
    assert [e["name"] for e in info["engines"]] == ["echo", "batch_echo", "hoard", "exclusive"]
    assert info["limits"]["max_message_bytes"] == MAX_BYTES
    assert info["torch_imported"] is False
    dead = f"tcp://127.0.0.1:{serverproc.free_port()}"
    out = _cli("info", "--server", dead, "--timeout", "0.5")
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "inhabit serve" in out.stderr


def test_serve_starts_fast_without_torch():
    t0 = time.monotonic()
    with start_server(()) as srv:  # default engines: the built-ins that import
        elapsed = time.monotonic() - t0
        with Client(srv.address) as cl:
            info = cl.info()
    assert elapsed < 5.0
    assert info["torch_imported"] is False
