"""A job holds a worker only while its frames arrive.

With one worker, a running job whose client stops sending frames -- while it
keeps pinging, or because it was killed -- gives the worker back to a job that
is ready, with an ERROR naming why; alone on the server it keeps waiting. All
through real ``inhabit serve`` processes and real ZeroMQ clients.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from backend.cli.local_server import REPO_ROOT
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, run_job
from tests.serverproc import start_server

ECHO = "tests.engines_for_tests:EchoEngine"
H = W = 16
REF = np.full((H, W, 3), 128, np.uint8)


def frame(i):
    mask = np.zeros((H, W), np.uint8)
    mask[4:12, 4:12] = 255
    return {"environment": np.full((H, W, 3), 10 * i, np.uint8), "character_mask": mask}


def _accepted(cl, job):
    while job.job_id is None:
        cl.poll(0.05)
    return job


def _quick_job(address) -> tuple[list, float]:
    t0 = time.monotonic()
    with Client(address) as cl:
        events = run_job(cl, P.JobSpec("echo", W, H, 3), REF, ((i, frame(i)) for i in range(3)), timeout=30)
    return events, time.monotonic() - t0


def test_a_pinging_client_that_stops_sending_gives_the_worker_to_a_waiting_job():
    with start_server((ECHO,), extra_args=("--workers", 1, "--frame-timeout", 1)) as srv:
        with Client(srv.address) as stalled:
            job = _accepted(stalled, stalled.submit(P.JobSpec("echo", W, H, 8), REF))
            for i in range(4):                     # the echo engine starts with 4 frames in
                job.send_frame(i, frame(i))
            # Alone on the server it may wait past its frame timeout: nobody needs the worker.
            events = []
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                events += stalled.poll(0.05)      # polling pings the server
            assert f"started job={job.job_id}" in srv.log()
            assert not any(e.type == P.ERROR for e in events) and not job.finished
            # A second client's job is ready: the stalled one gives way within about its frame timeout.
            done, seconds = _quick_job(srv.address)
            assert done[-1].type == P.DONE and seconds < 5.0, seconds
            end = time.monotonic() + 5.0
            while not job.finished and time.monotonic() < end:
                events += stalled.poll(0.05)
        (err,) = [e for e in events if e.type == P.ERROR]
        assert err.header["code"] == P.E_MISSING_INPUT and err.header["field"] == "frames"
        assert "frame 4 did not arrive within 1 s" in err.header["message"]
        assert "starved" in srv.log()
        assert len([e for e in events if e.type == P.RESULT]) == 4   # what it had was generated and sent


def test_a_pinging_client_that_never_sends_holds_no_worker():
    with start_server((ECHO,), extra_args=("--workers", 1)) as srv:
        with Client(srv.address) as idle:
            job = _accepted(idle, idle.submit(P.JobSpec("echo", W, H, 8), REF))
            idle.poll(0.2)
            done, seconds = _quick_job(srv.address)
            assert done[-1].type == P.DONE and seconds < 5.0
            assert f"started job={job.job_id}" not in srv.log()


# A raw ZeroMQ client written from docs/protocol.md: it submits, sends the
# first frames, and dies without cancel, goodbye or another ping.
DYING_CLIENT = """
import os, sys, numpy as np, zmq
sys.path.insert(0, {root!r})
from blender_addon.core import protocol as P
sock = zmq.Context.instance().socket(zmq.DEALER)
sock.connect({address!r})
ref = np.full((16, 16, 3), 60, np.uint8)
sock.send_multipart(P.encode(P.JobSpec("echo", 16, 16, 50).to_header(), {{P.REFERENCE: ref}}))
while True:
    hdr, _ = P.decode(sock.recv_multipart())
    if hdr["type"] == P.ACCEPTED:
        break
env = {{"environment": np.zeros((16, 16, 3), np.uint8), "character_mask": np.zeros((16, 16), np.uint8)}}
for i in range(4):
    sock.send_multipart(P.encode(P.header(P.FRAME, job=hdr["job"], index=i), env))
sock.poll(500)
print(hdr["job"], flush=True)
os._exit(0)  # dies mid-job without cancel or goodbye
"""


def test_a_killed_client_does_not_make_the_next_job_wait_for_its_heartbeat_timeout():
    # Default limits: heartbeat timeout 10 s, frame timeout 30 s. The dead client's
    # job is running and starving; a client silent for 3 heartbeat intervals is taken for gone.
    with start_server((ECHO,), extra_args=("--workers", 1)) as srv:
        out = subprocess.run([sys.executable, "-c", DYING_CLIENT.format(root=str(REPO_ROOT), address=srv.address)],
                             capture_output=True, text=True, timeout=30)
        dead = out.stdout.strip()
        assert len(dead) == 16, out.stderr
        assert f"started job={dead}" in srv.wait_for_log(f"started job={dead}")
        done, seconds = _quick_job(srv.address)
        assert done[-1].type == P.DONE
        assert seconds < 6.0, f"the next job waited {seconds:.1f} s"
        log = srv.wait_for_log(f"failed job={dead}")
        assert "its client sent nothing for" in log
