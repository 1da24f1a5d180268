"""Hundreds of random malformed messages, then a valid job; server memory stays bounded."""
import json
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blender_addon.core import protocol as P
from blender_addon.core.client import Client, run_job
from tests.serverproc import start_server

ENGINE = "tests.engines_for_tests:EchoEngine"
REF = np.full((16, 16, 3), 128, np.uint8)


@pytest.fixture(scope="module")
def server():
    with start_server((ENGINE,), extra_args=("--max-message-bytes", 100_000, "--heartbeat-timeout", 2)) as srv:
        yield srv


@pytest.fixture(scope="module")
def sock(server):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.linger = 0
    s.connect(server.address)
    yield s
    s.close(0)


def rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=10)
descriptor = st.fixed_dictionaries({
    "name": st.sampled_from(["environment", "character_mask", "scene_depth", "keypoints", "reference", "x"]),
    "dtype": st.sampled_from(["uint8", "float32", "float64", "int32", "bogus"]),
    "shape": st.lists(st.integers(-2, 20), max_size=4),
})
headers = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 1, 0, 2, "1", None]),
     "type": st.sampled_from(sorted(P.CLIENT_TYPES) + ["bogus", 7])},
    optional={"job": st.one_of(st.text(max_size=16), st.integers()),
              "index": st.one_of(st.integers(-3, 10), st.text(max_size=3)),
              "engine": st.sampled_from(["echo", "nope", ""]),
              "width": st.integers(-5, 5000), "height": st.integers(-5, 5000), "frames": st.integers(-1, 20000),
              "params": json_values, "objects": json_values,
              "buffers": st.one_of(st.lists(descriptor, max_size=3), json_values)})
messages = st.one_of(
    st.lists(st.binary(max_size=64), min_size=1, max_size=4),                     # raw garbage
    st.tuples(json_values.map(lambda v: json.dumps(v).encode()), st.lists(st.binary(max_size=64), max_size=3))
      .map(lambda t: [t[0], *t[1]]),                                                # JSON, not a header
    st.tuples(headers.map(lambda h: json.dumps(h).encode()), st.lists(st.binary(max_size=400), max_size=3))
      .map(lambda t: [t[0], *t[1]]),                                                # header-shaped
)


def _sync(sock, timeout=5.0):
    """HELLO -> INFO: every earlier message has been handled (one connection, in order)."""
    sock.send_multipart(P.encode(P.header(P.HELLO)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(50):
            hdr = json.loads(sock.recv_multipart()[0])
            if hdr.get("type") == P.INFO:
                return hdr
    raise AssertionError("server stopped answering")


def _fuzz_batch(sock, n_examples):
    @settings(max_examples=n_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(messages)
    def send(frames):
        sock.send_multipart(frames)
        while sock.poll(0):  # drain replies so they do not pile up here
            sock.recv_multipart()
    send()
    return _sync(sock)


def test_random_malformed_messages_then_a_valid_job(server, sock):
    _fuzz_batch(sock, 250)
    rss_1 = rss_kib(server.proc.pid)
    info = _fuzz_batch(sock, 250)
    rss_2 = rss_kib(server.proc.pid)
    assert info["protocol_version"] == P.PROTOCOL_VERSION
    # A leak per message would show as growth between equal batches; allow allocator noise.
    assert rss_2 - rss_1 < 16 * 1024, (rss_1, rss_2)
    with Client(server.address) as cl:
        n = 3
        frames = ((i, {"environment": np.zeros((16, 16, 3), np.uint8),
                       "character_mask": np.full((16, 16), 255, np.uint8)}) for i in range(n))
        events = run_job(cl, P.JobSpec("echo", 16, 16, n), REF, frames, timeout=10)
    assert events[-1].type == P.DONE
    assert sum(e.type == P.RESULT for e in events) == n
    assert server.proc.poll() is None
    assert "internal_error" not in server.log(), server.log()[-2000:]


def _clients_come_and_go(address, n_complete=20, n_vanish=8):
    """Clients that finish a job and leave, and clients that leave mid-job
    without a word (the server's heartbeat check must clean up after them)."""
    env = np.zeros((16, 16, 3), np.uint8)
    mask = np.full((16, 16), 255, np.uint8)
    for _ in range(n_complete):
        with Client(address) as cl:
            events = run_job(cl, P.JobSpec("echo", 16, 16, 3), REF,
                             ((i, {"environment": env, "character_mask": mask}) for i in range(3)), timeout=10)
            assert events[-1].type == P.DONE
    for _ in range(n_vanish):
        cl = Client(address)
        job = cl.submit(P.JobSpec("echo", 16, 16, 50, params={"delay": 0.01}), REF)
        while job.job_id is None:
            cl.poll(0.05)
        for i in range(4):  # enough for the echo engine to start: it dies running
            job.send_frame(i, {"environment": env, "character_mask": mask})
        cl.close()


def _idle_info(address, timeout=10.0):
    """INFO once the server holds nothing any more (heartbeat timeout is 2 s here)."""
    deadline = time.monotonic() + timeout
    with Client(address) as cl:
        while True:
            info = cl.info()
            if info["queue"] == {"running": 0, "queued": 0, "open_jobs": 0} or time.monotonic() > deadline:
                return info
            time.sleep(0.25)


def test_clients_and_jobs_come_and_go_without_leaving_anything_behind(server):
    _clients_come_and_go(server.address)
    _idle_info(server.address)
    rss_1 = rss_kib(server.proc.pid)
    _clients_come_and_go(server.address)
    info = _idle_info(server.address)
    rss_2 = rss_kib(server.proc.pid)
    assert info["queue"] == {"running": 0, "queued": 0, "open_jobs": 0}, info
    assert info["clients"] == 0 and info["frames_held"] == 0 and info["bytes_held"] == 0, info
    assert rss_2 - rss_1 < 16 * 1024, (rss_1, rss_2)  # equal rounds: growth would be a leak
    log = server.log()
    # Every vanished job was cancelled; one in each round was running (one worker), the rest queued.
    assert log.count("reason=client_lost") == 16 and log.count(" started job=") >= 2 * 20 + 2
