"""The client's own promises: clear errors, non-blocking poll, credit, server loss."""
import threading
import time

import numpy as np
import pytest
import zmq

from blender_addon.core import protocol as P
from blender_addon.core.client import Client, ProtocolMismatch, ServerUnreachable
from tests.serverproc import free_port, start_server

REF = np.full((16, 16, 3), 100, np.uint8)


def test_unreachable_names_address_and_how_to_start():
    addr = f"tcp://127.0.0.1:{free_port()}"
    with Client(addr, timeout=0.3) as cl:
        t0 = time.monotonic()
        with pytest.raises(ServerUnreachable) as info:
            cl.info()
        assert time.monotonic() - t0 < 1.5
    assert addr in str(info.value) and "inhabit serve" in str(info.value)


def test_protocol_mismatch_names_both_versions():
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def future_server():  # a real socket speaking a later version
        if router.poll(5000):
            ident, _ = router.recv_multipart()
            router.send_multipart([ident, b'{"v": 2, "type": "info"}'])
    t = threading.Thread(target=future_server)
    t.start()
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=5) as cl:
            with pytest.raises(ProtocolMismatch) as info:
                cl.info()
        assert "v2" in str(info.value) and "v1" in str(info.value)
    finally:
        t.join()
        router.close(0)


def test_poll_never_blocks_past_timeout_and_credit_is_enforced():
    with start_server(("tests.engines_for_tests:EchoEngine",)) as srv:
        with Client(srv.address) as cl:
            t0 = time.monotonic()
            assert cl.poll(0.2) == []
            assert 0.15 < time.monotonic() - t0 < 1.0
            job = cl.submit(P.JobSpec("echo", 16, 16, 10, params={"delay": 0.5}), REF)
            assert not job.can_send()
            with pytest.raises(RuntimeError, match="accepted"):
                job.send_frame(0, {})
            while job.state == "submitted":
                cl.poll(0.05)
            assert job.credit == 4
            with pytest.raises(RuntimeError, match="credit"):
                job.send_frame(4, {})
            # The server dies without a word: the open job is reported lost.
            lost_client = Client(srv.address, heartbeat_interval=0.1, heartbeat_timeout=0.8)
            lost = lost_client.submit(P.JobSpec("echo", 16, 16, 3), REF)
            while lost.state == "submitted":
                lost_client.poll(0.05)
            srv.proc.kill()
            srv.proc.wait(5)
            deadline = time.monotonic() + 5
            events = []
            while not events and time.monotonic() < deadline:
                events = [e for e in lost_client.poll(0.1) if e.type == "server_lost"]
            lost_client.close()
            assert events and events[0].job is lost and lost.state == "failed"
            assert lost.error.code == "server_lost"
