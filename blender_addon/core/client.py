"""Client of the Inhabit server: bpy-free, non-blocking, single-threaded.

Ships inside the Blender add-on, so it imports only the standard library,
numpy, zmq and the protocol module. ``Client.poll`` never blocks longer than
its timeout, so a Blender timer (or any loop) can drive whole jobs; ``run_job``
is the blocking wrapper for scripts and tests.

A Client and its RemoteJobs must be used from one thread only (ZeroMQ
sockets are not thread-safe).
"""
from __future__ import annotations

import enum
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import zmq

from . import address as address_mod
from . import logs, messages, protocol
from .wire import EVENTS, NOBLOCK, POLLIN, recv_parts, send_parts


class ServerUnreachable(Exception):
    """No server answered at the address."""


class HandshakeRefused(ServerUnreachable):
    """A server answered at the address but the CurveZMQ handshake failed (the
    client's socket monitor saw why); the message says which key to fix."""


class ProtocolMismatch(Exception):
    """The server speaks another protocol version."""


class ServerTimeout(Exception):
    """The server stopped answering in time."""


class JobFailed(Exception):
    """A job ended with an ERROR message."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.field = field
        self.message = message

    @classmethod
    def from_message(cls, msg: messages.Error) -> "JobFailed":
        return cls(msg.code, msg.message, msg.field)


SERVER_LOST = protocol.SERVER_LOST
log = logs.get("client")


@dataclass
class Event:
    type: str                       # a protocol message type, or "server_lost"
    job: "RemoteJob | None"
    header: dict                    # the raw header, as decoded
    arrays: dict = field(default_factory=dict)
    message: messages.Header | None = None   # the typed header (None for server_lost)


class RemoteJobState(enum.StrEnum):
    """submitted -> accepted -> done | cancelled | failed"""
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINISHED_STATES = frozenset({RemoteJobState.DONE, RemoteJobState.CANCELLED, RemoteJobState.FAILED})


def _unreachable(address: str, timeout: float) -> ServerUnreachable:
    return ServerUnreachable(f"no Inhabit server answered at {address} within {timeout:g} s; "
                             f"start one with `inhabit serve --bind {address}`")


_HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                     | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def _refusal(event: int, address: str, keyed: bool) -> HandshakeRefused | None:
    """The sentence for a failed handshake, or None for events that say nothing."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return HandshakeRefused(f"the server at {address} refused this client's key: add this client's public "
                                "key file (client.key) to the server's --allow-client-key list, or use a key "
                                "it allows")
    if not keyed and event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return HandshakeRefused(f"the server at {address} requires CurveZMQ keys: give --curve-server-key "
                                "server.key --curve-client-key client.key_secret (`inhabit keys generate DIR` "
                                "makes them; the server must allow client.key)")
    if keyed and event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
        return HandshakeRefused(f"the server at {address} did not accept the CurveZMQ handshake: check that "
                                "--curve-server-key is that server's own public key (its server.key), or "
                                "give no keys if the server runs without CurveZMQ")
    return None


class Client:
    def __init__(self, address: str = protocol.DEFAULT_ADDRESS, *, timeout: float = 5.0,
                 heartbeat_interval: float = protocol.DEFAULT_LIMITS["heartbeat_interval_s"],
                 heartbeat_timeout: float = protocol.DEFAULT_LIMITS["heartbeat_timeout_s"],
                 curve_server_public_key: bytes | None = None,
                 curve_client_keys: tuple[bytes, bytes] | None = None):
        self.address = address_mod.normalize(address)  # host:port -> tcp://host:port; AddressError if malformed
        address = self.address
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self._ctx: zmq.Context = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.linger = 0
        self._keyed = bool(curve_server_public_key or curve_client_keys)
        if self._keyed:
            if not (curve_server_public_key and curve_client_keys):
                raise ValueError("CurveZMQ needs both the server's public key and this client's key pair")
            self._sock.curve_serverkey = curve_server_public_key
            self._sock.curve_publickey, self._sock.curve_secretkey = curve_client_keys
        # The socket monitor is the only place a refused handshake shows: without
        # it a client with the wrong key looks exactly like one with no server.
        self._monitor = self._sock.get_monitor_socket(_HANDSHAKE_EVENTS)
        self._handshake_ok = False
        self._refused: HandshakeRefused | None = None
        self._sock.connect(address)
        self._poller = zmq.Poller()                  # one for the client's life: Socket.poll builds one per call
        self._poller.register(self._sock, zmq.POLLIN)
        self._jobs: dict[str, RemoteJob] = {}        # by server job id
        self._pending: dict[str, RemoteJob] = {}     # by request token, until ACCEPTED
        self._last_rx = time.monotonic()
        self._last_ping = 0.0
        self._backlog: list = []                     # job messages that arrived during info()
        self._closed = False

    # -- blocking query --------------------------------------------------------------
    def info(self, timeout: float | None = None) -> dict:
        """Ask for INFO; raises ServerUnreachable / ProtocolMismatch."""
        timeout = self.timeout if timeout is None else timeout
        self._send(messages.Hello())
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            self._read_monitor()
            if self._refused is not None and not self._handshake_ok:
                raise self._refused
            if remaining <= 0:
                raise _unreachable(self.address, timeout)
            # Short slices: a refused handshake shows on the monitor, not on this socket.
            if not self._poller.poll(min(100, int(remaining * 1000) + 1)):
                continue
            frames = recv_parts(self._sock)
            hdr = _peek_header(frames[0])
            if hdr is not None and hdr.get("v") != protocol.PROTOCOL_VERSION:
                raise ProtocolMismatch(f"the server at {self.address} speaks protocol v{hdr.get('v')}; "
                                       f"this client speaks v{protocol.PROTOCOL_VERSION}")
            if hdr is not None and hdr.get("type") == protocol.INFO:
                self._last_rx = time.monotonic()
                return {k: v for k, v in hdr.items() if k not in ("v", "type")}
            if hdr is not None and hdr.get("type") == protocol.ERROR and hdr.get("code") == protocol.E_BAD_VERSION:
                raise ProtocolMismatch(f"the server at {self.address} rejected protocol v{protocol.PROTOCOL_VERSION}: "
                                       f"{hdr.get('message')}")
            # Anything else belongs to a job: keep it for the next poll().
            self._backlog_frames(frames)

    # -- jobs ------------------------------------------------------------------------
    def submit(self, spec: protocol.JobSpec, reference: np.ndarray,
               reference_keypoints: np.ndarray | None = None) -> "RemoteJob":
        """Send SUBMIT; returns at once. ACCEPTED (or ERROR) arrives through poll()."""
        request = spec.request or uuid.uuid4().hex[:12]
        hdr = spec.to_header()
        hdr["request"] = request
        arrays = {}
        if reference is not None:
            arrays[protocol.REFERENCE] = np.ascontiguousarray(reference, np.uint8)
        if reference_keypoints is not None:
            arrays[protocol.REFERENCE_KEYPOINTS] = np.ascontiguousarray(reference_keypoints, np.float32)
        job = RemoteJob(self, request, spec)
        self._pending[request] = job
        self._send(hdr, arrays)
        if not any(not j.finished for j in (*self._jobs.values(), *self._pending.values()) if j is not job):
            self._last_rx = time.monotonic()  # the silence clock starts at the first open job
        return job

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Events that arrived; waits at most ``timeout`` seconds for the first one."""
        now = time.monotonic()
        if now - self._last_ping >= self.heartbeat_interval:
            self._send(messages.Ping(t=now))
            self._last_ping = now
        events: list[Event] = []
        if self._backlog:
            for frames in self._backlog:
                events.extend(self._handle(frames))
            self._backlog = []
        deadline = now + max(0.0, timeout)
        while True:
            # Take what is queued first (reading EVENTS is far cheaper than a
            # poll), and keep waiting while only PONGs arrive: the caller asked for events.
            while self._sock.get(EVENTS) & POLLIN:
                events.extend(self._handle(recv_parts(self._sock, NOBLOCK)))
            remaining = deadline - time.monotonic()
            if events or remaining <= 0:
                break
            self._poller.poll(max(1, int(remaining * 1000)))
        if time.monotonic() - self._last_rx > self.heartbeat_timeout:
            for job in [j for j in (*self._jobs.values(), *self._pending.values()) if not j.finished]:
                logs.event(log, "server_lost", level=logging.WARNING, address=self.address, job=job.job_id,
                           silent_s=round(time.monotonic() - self._last_rx, 1))
                job.state = RemoteJobState.FAILED
                job.error = JobFailed(SERVER_LOST, f"no answer from {self.address} for {self.heartbeat_timeout:g} s")
                events.append(Event(SERVER_LOST, job, {"type": SERVER_LOST, "job": job.job_id,
                                                       "message": str(job.error)}))
        return events

    def _read_monitor(self) -> None:
        from zmq.utils.monitor import recv_monitor_message
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor, zmq.NOBLOCK)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_ok, self._refused = True, None
            else:
                self._refused = _refusal(event, self.address, self._keyed) or self._refused

    def _backlog_frames(self, frames):
        self._backlog.append(frames)

    def _handle(self, frames) -> list[Event]:
        self._last_rx = time.monotonic()
        try:
            hdr, arrays = protocol.decode(frames, allowed_types=protocol.SERVER_TYPES)
            msg = messages.parse(hdr)
        except protocol.ProtocolError as err:
            # A server that breaks the protocol: surface it as an error event, not a crash.
            return [Event(protocol.ERROR, None, err.to_header(), message=err.to_message())]
        if isinstance(msg, messages.Pong):
            return []
        job = None
        job_id = getattr(msg, "job", None)
        if isinstance(msg, messages.Accepted):
            job = self._pending.pop(msg.request, None)
            if job is not None:
                job.job_id = msg.job
                job.state = RemoteJobState.ACCEPTED
                self._jobs[msg.job] = job
                if job._cancel_when_accepted:
                    job.cancel()
        elif isinstance(job_id, str) and job_id in self._jobs:
            job = self._jobs[job_id]
        elif isinstance(msg, messages.Error) and msg.request in self._pending:
            job = self._pending.pop(msg.request)
        if job is not None:
            if isinstance(msg, messages.Credit):
                job.credit = max(job.credit, msg.upto)
            elif isinstance(msg, (messages.Accepted, messages.Result, messages.Progress)) and msg.credit is not None:
                job.credit = max(job.credit, msg.credit)  # on ACCEPTED, and riding on a RESULT or PROGRESS
            if isinstance(msg, messages.Done):
                job.state = RemoteJobState.DONE
            elif isinstance(msg, messages.Cancelled):
                job.state = RemoteJobState.CANCELLED
            elif isinstance(msg, messages.Error):
                job.state = RemoteJobState.FAILED
                job.error = JobFailed.from_message(msg)
            if job.finished and job.job_id:
                self._jobs.pop(job.job_id, None)
        return [Event(msg.TYPE, job, hdr, arrays, msg)]

    def _send(self, hdr: messages.Header | messages.JobSpec | dict, arrays: dict | None = None) -> None:
        if self._closed:
            raise RuntimeError("client is closed")
        send_parts(self._sock, protocol.encode(hdr, arrays))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._monitor is not None:
                self._sock.disable_monitor()
                self._monitor.close(0)
                self._monitor = None
            self._sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RemoteJob:
    """A job as this client sees it (``state`` is a ``RemoteJobState``)."""

    def __init__(self, client: Client, request: str, spec: protocol.JobSpec):
        self.client = client
        self.request = request
        self.spec = spec
        self.job_id: str | None = None
        self.state = RemoteJobState.SUBMITTED
        self.credit = 0
        self.next_index = 0
        self.error: JobFailed | None = None
        self._input_ended = False

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def input_ended(self) -> bool:
        """True once end_input() was sent."""
        return self._input_ended

    def can_send(self) -> bool:
        return (self.state == RemoteJobState.ACCEPTED and not self._input_ended
                and self.next_index < min(self.credit, self.spec.frames))

    def send_frame(self, index: int, arrays: dict) -> None:
        """Send one frame's conditioning; raises if the server has not granted credit for it."""
        if self.state != RemoteJobState.ACCEPTED:
            raise RuntimeError(f"job is {self.state}; frames can be sent only once it is accepted")
        if index >= self.credit:
            raise RuntimeError(f"frame {index} is beyond the server's credit (< {self.credit}); poll() for CREDIT")
        assert self.job_id is not None  # set with the state ACCEPTED
        self.client._send(messages.Frame(job=self.job_id, index=int(index)), arrays)
        self.next_index = max(self.next_index, int(index) + 1)

    def end_input(self) -> None:
        if self.job_id is None:
            raise RuntimeError("job not accepted yet")
        self.client._send(messages.EndInput(job=self.job_id))
        self._input_ended = True

    def cancel(self) -> None:
        """Ask the server to stop; CANCELLED arrives through poll(). Before ACCEPTED it is deferred."""
        if self.finished:
            return
        if self.job_id is None:
            self._cancel_when_accepted = True
            return
        self.client._send(messages.Cancel(job=self.job_id))

    _cancel_when_accepted = False


def _peek_header(frame) -> dict | None:
    """The header of a reply to HELLO, or None if it is not one (checked fully in poll())."""
    try:
        return protocol.parse_header(frame.bytes)
    except protocol.ProtocolError:
        return None


def run_job(client: Client, spec: protocol.JobSpec, reference: np.ndarray,
            frames: Iterable[tuple[int, dict]], *, reference_keypoints: np.ndarray | None = None,
            on_event: Callable[[Event], None] | None = None, should_cancel: Callable[[], bool] | None = None,
            timeout: float = 60.0) -> list[Event]:
    """Submit, stream ``frames`` as credit allows, collect events until the job ends.

    Returns every event of the job (RESULTs included) when it is done or
    cancelled. Raises JobFailed on ERROR, ServerTimeout when nothing arrives
    for ``timeout`` seconds or the server is lost.
    """
    job = client.submit(spec, reference, reference_keypoints)
    source: Iterator = iter(frames)
    nxt = next(source, None)
    events: list[Event] = []
    last_event = time.monotonic()
    cancel_sent = False
    while True:
        if should_cancel is not None and not cancel_sent and should_cancel():
            job.cancel()
            cancel_sent = True
        while nxt is not None and not cancel_sent and job.can_send():
            job.send_frame(nxt[0], nxt[1])
            nxt = next(source, None)
        if nxt is None and not cancel_sent and job.state == RemoteJobState.ACCEPTED and not job._input_ended:
            job.end_input()
        for ev in client.poll(0.05):
            if ev.job is not job and ev.type != protocol.ERROR:
                continue
            if ev.job is None and isinstance(ev.message, messages.Error) and ev.message.request not in (None,
                                                                                                    job.request):
                continue  # another submit's refusal
            last_event = time.monotonic()
            events.append(ev)
            if on_event is not None:
                on_event(ev)
            if ev.type == SERVER_LOST:
                raise ServerTimeout(str(job.error))
            if ev.type == protocol.ERROR and (ev.job is job or ev.job is None):
                raise job.error or JobFailed.from_message(ev.message)  # type: ignore[arg-type]  # an ERROR's
            if ev.type in (protocol.DONE, protocol.CANCELLED):
                return events
        if time.monotonic() - last_event > timeout:
            job.cancel()
            raise ServerTimeout(f"no message from {client.address} about job {job.job_id or job.request} "
                                f"for {timeout:g} s")
