"""Fuzzing a real ``inhabit serve`` over a real socket: hostile messages in batches,
and after every batch the server is up, answers, and runs a normal job.

The messages come from ``tests/fuzz_messages.py`` (the protocol's own tables,
mutations of valid messages, raw garbage). Each example may open a job first,
so mutated FRAME / END_INPUT / CANCEL messages reach a live job; it ends with a
PING whose PONG must arrive within ``REPLY_TIMEOUT_S``, and every reply in
between must be a well-formed server message whose error text is bounded.

``make test`` runs a bounded number of batches (seconds); ``make fuzz`` sets
``FUZZ_SECONDS`` (600 by default) and writes a summary to ``FUZZ_REPORT``.
"""
from __future__ import annotations

import collections
import json
import os
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings

from blender_addon.core import codec, messages
from blender_addon.core import protocol as P
from blender_addon.core.client import Client, run_job
from tests import fuzz_messages as fm
from tests.serverproc import start_server

ENGINE = "tests.engines_for_tests:EchoEngine"
REF = np.full((16, 16, 3), 128, np.uint8)
FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "0"))   # 0: the bounded run of `make test`
CI_BATCHES, CI_EXAMPLES = 4, 300
LONG_EXAMPLES = 500
REPLY_TIMEOUT_S = 15.0   # a hang, not a slow reply on a busy machine
MAX_ERROR_TEXT = 1000     # an error message stays short whatever the client sent
MAX_FIELD_TEXT = 100


@pytest.fixture(scope="module")
def server():
    with start_server((ENGINE,), extra_args=("--max-message-bytes", 200_000, "--heartbeat-timeout", 2)) as srv:
        yield srv


def rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Fuzzer:
    """One hostile client (a DEALER socket) and what it has seen."""

    def __init__(self, server, stats: collections.Counter):
        self.server = server
        self.stats = stats
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(server.address)
        self.pings = 0
        self.opened: list[str] = []    # jobs accepted for this client, cancelled by the next example
        self.recent: collections.deque = collections.deque(maxlen=8)   # for the report of a failure

    def close(self):
        self.sock.close(0)

    def check_reply(self, frames) -> messages.Header:
        """A reply must decode and parse as a server message, with bounded error text."""
        hdr, _ = codec.decode(frames, allowed_types=messages.SERVER_TYPES)
        msg = messages.parse(hdr)
        self.stats[f"reply_{msg.TYPE}"] += 1
        if isinstance(msg, messages.Accepted):
            self.opened.append(msg.job)
        if isinstance(msg, messages.Error):
            self.stats[f"error_{msg.code}"] += 1
            assert msg.code != messages.E_INTERNAL, (msg, list(self.recent))
            assert len(msg.message) <= MAX_ERROR_TEXT, (len(msg.message), msg.message[:200])
            assert msg.field is None or len(msg.field) <= MAX_FIELD_TEXT, msg.field
        return msg

    def _until(self, stop, what: str) -> messages.Header:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.sock.poll(20):
                msg = self.check_reply(self.sock.recv_multipart(copy=False))
                if stop(msg):
                    return msg
        alive = self.server.proc.poll() is None
        raise AssertionError(f"no {what} within {REPLY_TIMEOUT_S} s (server {'up' if alive else 'DOWN'}); "
                             f"last messages: {list(self.recent)}\n{self.server.log()[-3000:]}")

    def open_job(self, frames: int) -> str:
        self.sock.send_multipart(codec.encode(messages.JobSpec("echo", fm.W, fm.H, frames, request="fuzz-open"),
                                              {codec.REFERENCE: REF}))
        msg = self._until(lambda m: isinstance(m, (messages.Accepted, messages.Error))
                          and getattr(m, "request", None) == "fuzz-open", "ACCEPTED")
        assert isinstance(msg, messages.Accepted), msg
        return msg.job

    def example(self, example) -> None:
        open_job, batch = example
        for job in self.opened:  # so the server's job table (--max-queue) never fills up
            self.sock.send_multipart(codec.encode(messages.Cancel(job=job)))
        self.opened.clear()
        job = self.open_job(open_job) if open_job else "no-such-job"
        for frames in batch:
            frames = fm.substitute_job(frames, job)
            self.recent.append([f[:200] for f in frames])
            self.sock.send_multipart(frames)
            self.stats["messages"] += 1
        self.pings += 1
        t = float(self.pings)
        self.sock.send_multipart(codec.encode(messages.Ping(t=t)))
        self._until(lambda m: isinstance(m, messages.Pong) and m.t == t, "PONG")
        self.stats["examples"] += 1


def run_batch(server, n_examples: int, stats, *, derandomize: bool) -> None:
    fuzzer = Fuzzer(server, stats)

    @settings(max_examples=n_examples, deadline=None, database=None, derandomize=derandomize,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(fm.examples)
    def fuzz(example):
        fuzzer.example(example)

    try:
        fuzz()
    finally:
        fuzzer.close()   # jobs it left open are cancelled when its heartbeat times out


def normal_job(address, n=3):
    with Client(address) as cl:
        frames = ((i, {"environment": np.zeros((16, 16, 3), np.uint8),
                       "character_mask": np.full((16, 16), 255, np.uint8)}) for i in range(n))
        events = run_job(cl, P.JobSpec("echo", 16, 16, n), REF, frames, timeout=30)
    assert events[-1].type == P.DONE
    assert sum(e.type == P.RESULT for e in events) == n


def test_hostile_batches_leave_the_server_serving(server):
    stats: collections.Counter = collections.Counter()
    t0 = time.monotonic()
    rss = []
    batches = 0
    while True:
        long_run = FUZZ_SECONDS > 0
        run_batch(server, LONG_EXAMPLES if long_run else CI_EXAMPLES, stats, derandomize=not long_run)
        assert server.proc.poll() is None, server.log()[-3000:]
        normal_job(server.address)
        rss.append(rss_kib(server.proc.pid))
        batches += 1
        if (batches >= CI_BATCHES and not long_run) or (long_run and time.monotonic() - t0 >= FUZZ_SECONDS):
            break
    log = server.log()
    summary = {"batches": batches, "seconds": round(time.monotonic() - t0, 1), "rss_kib": [rss[0], rss[-1]],
               "internal_errors_logged": log.count("internal_error"), **dict(sorted(stats.items()))}
    print(json.dumps(summary, indent=1))
    if os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "w") as f:
            json.dump(summary, f, indent=1)
    assert "internal_error" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    # A leak per message would show as growth over equal batches; allow allocator noise.
    assert rss[-1] - rss[0] < 32 * 1024, rss


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


@pytest.mark.skipif(FUZZ_SECONDS > 0, reason="the long fuzz run is about hostile messages only")
def test_clients_and_jobs_come_and_go_without_leaving_anything_behind(server):
    _idle_info(server.address)
    before = server.log()
    _clients_come_and_go(server.address)
    _idle_info(server.address)
    rss_1 = rss_kib(server.proc.pid)
    _clients_come_and_go(server.address)
    info = _idle_info(server.address)
    rss_2 = rss_kib(server.proc.pid)
    assert info["queue"] == {"running": 0, "queued": 0, "open_jobs": 0}, info
    assert info["clients"] == 0 and info["frames_held"] == 0 and info["bytes_held"] == 0, info
    assert rss_2 - rss_1 < 16 * 1024, (rss_1, rss_2)  # equal rounds: growth would be a leak
    log = server.log()[len(before):]
    # Every vanished job was cancelled; one in each round was running (one worker), the rest queued.
    assert log.count("reason=client_lost") == 16 and log.count(" started job=") >= 2 * 20 + 2
