"""The server's socket loop: one thread owns the ROUTER socket.

Messages from clients are decoded here and checked by ``admission``; admitted
jobs go to the ``Scheduler``, whose worker threads run the engines and hand
their encoded messages (RESULT, PROGRESS, CREDIT, DONE, ...) back to this loop
through the ``Outbox`` and ring its bell, so no zmq socket is ever shared
between threads.
"""
from __future__ import annotations

import collections
import signal
import sys
import threading
import time

import zmq

from blender_addon.core import messages, protocol
from blender_addon.core.version import __version__ as SERVER_VERSION
from blender_addon.core.wire import EVENTS, NOBLOCK, POLLIN, recv_parts, send_parts

from . import log
from .admission import admit_submit, check_frame, ranges
from .config import ServerConfig
from .handshakes import HandshakeWatch, refusals
from .job import JobState, ServerJob
from .outbox import Outbox, Outgoing
from .scheduler import Scheduler

OUTBOX = "inproc://inhabit-outbox"
HEARTBEAT_CHECK_S = 0.25

__all__ = ["Server", "ServerConfig", "main_loop"]


class Server:
    def __init__(self, engine_classes, config: ServerConfig, *, security=None):
        self.config = config
        self.limits = config.limits
        self.engine_classes = {cls.name: cls for cls in engine_classes}
        # Construction is cheap by contract (heavy work lives in load()), so one
        # unloaded instance per engine checks jobs at submit, on this thread.
        self.validators = {cls.name: cls(device=config.device, weights=config.weights,
                                         options=config.engine_options.get(cls.name), limits=config.limits)
                           for cls in engine_classes}
        self.ctx: zmq.Context = zmq.Context.instance()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 500
        # No per-part cap at the socket (ZMQ_MAXMSGSIZE would drop the peer without
        # a word): the decode check enforces max_message_bytes with a too_large
        # reply. Off loopback only clients holding an allowed CurveZMQ key get here.
        self.router.setsockopt(zmq.MAXMSGSIZE, -1)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.sndhwm = 1000
        self.auth = security(self.ctx, self.router) if security else None
        # With CurveZMQ on, refused handshakes are logged with the peer's address.
        self.handshakes = HandshakeWatch(self.router) if self.auth else None
        self.router.bind(config.bind)
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.outbox = Outbox(self.ctx, OUTBOX + f"-{id(self)}")
        self.jobs: dict[str, ServerJob] = {}
        self.by_client: dict[bytes, set[str]] = collections.defaultdict(set)
        self.last_seen: dict[bytes, float] = {}
        self.finished_ids: collections.OrderedDict = collections.OrderedDict()  # recent, for late cancels
        scheduler_class = Scheduler
        if config.cluster is not None:  # Ray is imported only here, only with --cluster
            from .cluster.relay import ClusterScheduler as scheduler_class
        self.scheduler = scheduler_class(config, self.engine_classes, self.outbox, self.jobs)
        self.stop = threading.Event()
        self.fed: set[ServerJob] = set()      # jobs given frames since their worker was last woken

    # -- life cycle ------------------------------------------------------------------
    def serve_forever(self) -> int:
        self.scheduler.start()
        log.event("listening", address=self.address, engines=",".join(self.engine_classes),
                  device=self.config.device, workers=self.config.workers)
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.outbox.bell, zmq.POLLIN)
        if self.handshakes is not None:
            poller.register(self.handshakes.socket, zmq.POLLIN)
        data = self.scheduler.data_sockets()
        for sock in data:
            poller.register(sock, zmq.POLLIN)
        next_hb = time.monotonic() + HEARTBEAT_CHECK_S
        while not self.stop.is_set():
            events = dict(poller.poll(100))
            if self.outbox.bell in events:
                self._drain_outbox()
            for sock in data:
                if sock in events:
                    self.scheduler.on_data(sock, self._deliver)
            if self.handshakes is not None and self.handshakes.socket in events:
                self.handshakes.drain()
            if self.router in events:
                for _ in range(100):  # bounded so worker output is never starved
                    if not self.router.get(EVENTS) & POLLIN:
                        break
                    self._on_client_message(recv_parts(self.router, NOBLOCK))
                waiting_to_start = False
                while self.fed:
                    job = self.fed.pop()
                    self.scheduler.frames_arrived(job)
                    waiting_to_start |= job.state == JobState.QUEUED
                if waiting_to_start:  # its first frames may have arrived: let the workers look
                    self.scheduler.wake()
            if self.scheduler.tick():
                for sock in self.scheduler.data_sockets():
                    if sock not in data:
                        poller.register(sock, zmq.POLLIN)
                data = self.scheduler.data_sockets()
            if time.monotonic() >= next_hb:
                self._check_heartbeats()
                refusals.flush()
                next_hb = time.monotonic() + HEARTBEAT_CHECK_S
        self._shutdown()
        return 0

    def request_stop(self, *_):
        self.stop.set()

    def install_signal_handlers(self):
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def _shutdown(self):
        open_jobs = list(self.jobs.values())
        log.event("shutdown", open_jobs=len(open_jobs))
        for job in open_jobs:
            job.cancel("shutdown")
            self._finish(job, messages.Error(protocol.E_SHUTDOWN, "the server is shutting down", job=job.id),
                         outcome="cancelled", reason="shutdown")
        self.scheduler.stop(timeout=3.0)
        self.outbox.close()
        if self.handshakes is not None:
            self.handshakes.close()
        self.router.close(500)
        if self.auth:
            self.auth.stop()

    # -- sending ---------------------------------------------------------------------
    def _send(self, identity: bytes, msg: messages.Header, arrays=None):
        try:
            send_parts(self.router, [identity, *protocol.encode(msg, arrays)], NOBLOCK)
        except zmq.Again:
            log.event("dropped_message", type=msg.TYPE, reason="client not reading")

    def _reply_error(self, identity: bytes, err: protocol.ProtocolError, request: str | None = None):
        self._send(identity, err.to_message(request=request))

    def _drain_outbox(self):
        for out in self.outbox.take_all():
            self._deliver(out)

    def _deliver(self, out: Outgoing):
        job = self.jobs.get(out.job_id)
        if job is None:
            return  # finished or cancelled meanwhile: the client was already told
        if out.type in protocol.TERMINAL_TYPES:
            outcome = {"done": "done", "cancelled": "cancelled", "error": "failed"}[out.type]
            send_parts(self.router, [job.identity, *out.frames])
            self._finish(job, None, outcome=outcome)
        else:
            try:
                send_parts(self.router, [job.identity, *out.frames], NOBLOCK)
            except zmq.Again:
                log.event("dropped_message", job=out.job_id, type=out.type, reason="client not reading")

    # -- incoming --------------------------------------------------------------------
    def _on_client_message(self, frames):
        """Handle one message. Whatever goes wrong ends in one ERROR reply for it
        (and a log line when it is the server's fault); the loop goes on."""
        identity = frames[0].bytes
        body = frames[1:]
        now = self.last_seen[identity] = time.monotonic()
        for job_id in self.by_client.get(identity, ()):
            job = self.jobs.get(job_id)
            if job is not None:
                job.last_heard = now               # read by a worker starving for this client's frames
        hdr: dict = {}
        try:
            try:
                hdr, arrays = protocol.decode(body, max_bytes=self.limits["max_message_bytes"],
                                              max_header_bytes=self.limits.get("max_header_bytes"),
                                              allowed_types=protocol.CLIENT_TYPES)
            except protocol.ProtocolError as err:
                # A SUBMIT refused while decoding (buffer count, byte length, NaN) still
                # names its request, so the client knows which submit failed.
                self._fail_owned(identity, err, request=_submit_request(body, self.limits.get("max_header_bytes")))
                return
            handler = {
                protocol.HELLO: self._on_hello, protocol.PING: self._on_ping, protocol.SUBMIT: self._on_submit,
                protocol.FRAME: self._on_frame, protocol.END_INPUT: self._on_end_input,
                protocol.CANCEL: self._on_cancel,
            }[hdr["type"]]
            handler(identity, hdr, arrays)
        except protocol.ProtocolError as err:
            self._fail_owned(identity, err)
        except Exception as exc:  # a server bug must not stop service for everyone
            job = hdr.get("job") if isinstance(hdr.get("job"), str) else None
            log.event("internal_error", client=identity.hex()[:12], type=hdr.get("type"), job=job,
                      error=f"{type(exc).__name__}: {exc}")
            try:
                self._send(identity, messages.Error(protocol.E_INTERNAL, "the server failed on this message "
                                                    f"({type(exc).__name__}); it is logged, and the server goes on",
                                                    job=job))
            except Exception as again:  # noqa: BLE001  # the reply itself failed: the log line is all we can do
                log.event("internal_error", client=identity.hex()[:12], error=f"reply failed: {again!r}")

    def _fail_owned(self, identity: bytes, err: protocol.ProtocolError, request: str | None = None):
        """Reply ERROR; an error about one of this client's own open jobs ends that job."""
        job = self.jobs.get(err.job) if err.job else None
        if job is not None and job.identity == identity:
            job.cancel("failed")
            self._finish(job, err.to_message(request=request), outcome="failed", reason=err.code)
        else:
            self._reply_error(identity, err, request)

    def _on_hello(self, identity, hdr, arrays):
        self._send(identity, self.info())

    def _on_ping(self, identity, hdr, arrays):
        self._send(identity, messages.Pong(t=messages.Ping.from_dict(hdr).t))

    def info(self) -> messages.Info:
        workers = max(1, self.config.workers)
        return messages.Info(
            server_version=SERVER_VERSION,
            protocol_version=protocol.PROTOCOL_VERSION,
            engines=[cls.describe() | {"loaded": name in self.scheduler.loaded_engines,
                                       "options": dict(self.validators[name].options)}
                     for name, cls in self.engine_classes.items()],
            device=self.config.device,
            worker_devices=[self.config.worker_device(n) for n in range(workers)],
            limits=dict(self.limits),
            concurrent_jobs=workers,        # one job per worker
            queue={"running": len(self.scheduler.running), "queued": self.scheduler.queued_count(),
                   "open_jobs": len(self.jobs)},
            clients=len(self.by_client),
            # Heavy ML is imported only when an engine loads; this shows whether it has been.
            torch_imported="torch" in sys.modules,
            frames_held=sum(len(j.frames) for j in self.jobs.values()),
            bytes_held=sum(j.held_bytes() for j in self.jobs.values()),
            **self.scheduler.describe(),
        )

    def _on_submit(self, identity, hdr, arrays):
        request = hdr.get("request") if isinstance(hdr.get("request"), str) else ""
        try:
            if len(self.jobs) >= self.config.max_queue:
                raise protocol.ProtocolError(protocol.E_BUSY, f"the server holds {len(self.jobs)} jobs; "
                                             "try again later")
            admitted = admit_submit(hdr, arrays, engine_classes=self.engine_classes, validators=self.validators,
                                    limits=self.limits)
        except protocol.ProtocolError as err:
            self._reply_error(identity, err, request)
            log.event("rejected", request=request, code=err.code, field=err.field)
            return
        cls, data = admitted.engine_cls, admitted.job
        job = ServerJob(data, identity, cls, admitted.window, admitted.start_after)
        self.jobs[job.id] = job
        self.by_client[identity].add(job.id)
        log.event("submitted", job=job.id, engine=cls.name, frames=data.frames, size=f"{data.width}x{data.height}",
                  name=data.name)
        position = self.scheduler.enqueue(job) if cls.streaming else None
        self._send(identity, messages.Accepted(job=job.id, request=request, credit=job.credit, window=admitted.window,
                                               queue_position=position if position is not None else 0,
                                               streaming=bool(cls.streaming)))
        log.event("accepted", job=job.id, credit=job.credit, queue_position=position)

    def _own_job(self, identity, msg: messages.Frame | messages.EndInput | messages.Cancel) -> ServerJob:
        job = self.jobs.get(msg.job)
        if job is None or job.identity != identity:  # other clients' jobs do not exist for you
            raise protocol.ProtocolError(protocol.E_UNKNOWN_JOB, f"no open job {messages.echo(msg.job)} for this "
                                         "client", field=f"{msg.TYPE}.job")
        return job

    def _on_frame(self, identity, hdr, arrays):
        msg = messages.Frame.from_dict(hdr)
        if self._finished_here(identity, msg.job):
            return
        job = self._own_job(identity, msg)
        index = check_frame(job, hdr, arrays)
        wanted = set(job.engine_cls.required_inputs) | set(job.engine_cls.optional_inputs)
        job.add_frame(index, {k: v for k, v in arrays.items() if k in wanted})
        self.fed.add(job)

    def _on_end_input(self, identity, hdr, arrays):
        msg = messages.EndInput.from_dict(hdr)
        if self._finished_here(identity, msg.job):
            return
        job = self._own_job(identity, msg)
        missing = [i for i in range(job.data.frames) if i not in job.received]
        if missing:
            raise protocol.ProtocolError(protocol.E_MISSING_INPUT,
                                         f"end_input before frames {ranges(missing)} arrived "
                                         f"(the job declared {job.data.frames} frames)", field="frames", job=job.id)
        job.end_input()
        if job.state == JobState.ACCEPTED:
            self.scheduler.enqueue(job)
        elif job.state == JobState.QUEUED:  # a streaming job short of its first frames can start now
            self.scheduler.wake()

    def _finished_here(self, identity, job_id: str) -> bool:
        """True for a job of this client that has already ended. A streaming
        engine may finish before the client's last FRAME, END_INPUT or CANCEL
        reaches us; its terminal message is on the way, so those are ignored."""
        return self.finished_ids.get(job_id) == identity

    def _on_cancel(self, identity, hdr, arrays):
        msg = messages.Cancel.from_dict(hdr)
        if self._finished_here(identity, msg.job):
            return
        job = self._own_job(identity, msg)
        job.cancel("cancelled")
        if job.state != JobState.RUNNING:  # nothing will run it: answer now
            self._finish(job, messages.Cancelled(job=job.id, reason="cancelled"), outcome="cancelled")
        # A running job answers CANCELLED from its worker at the engine's next step.

    def _check_heartbeats(self):
        timeout = self.limits["heartbeat_timeout_s"]
        now = time.monotonic()
        for identity, ids in list(self.by_client.items()):
            if now - self.last_seen.get(identity, now) > timeout:
                if ids:
                    log.event("client_lost", client=identity.hex()[:12], jobs=len(ids),
                              silent_s=round(now - self.last_seen[identity], 1))
                for job_id in list(ids):
                    job = self.jobs.get(job_id)
                    if job:
                        job.cancel("client_lost")
                        self._finish(job, None, outcome="cancelled", reason="client_lost")
                self.by_client.pop(identity, None)
                self.last_seen.pop(identity, None)
        # Forget clients without jobs that went quiet, so the table stays small.
        for identity in [i for i, t in self.last_seen.items() if now - t > timeout and i not in self.by_client]:
            self.last_seen.pop(identity, None)

    def _finish(self, job: ServerJob, msg: messages.Header | None, *, outcome: str, reason: str | None = None):
        """Forget a job (frames freed) and send its terminal message if given."""
        if job.id not in self.jobs:
            return
        if msg is not None:
            self._send(job.identity, msg)
        del self.jobs[job.id]
        ids = self.by_client.get(job.identity)
        if ids is not None:
            ids.discard(job.id)
            if not ids:
                self.by_client.pop(job.identity, None)
        self.scheduler.remove(job.id)
        with job.cond:
            job.frames.clear()
            job.state = JobState.FINISHED
        self.finished_ids[job.id] = job.identity
        while len(self.finished_ids) > 1000:
            self.finished_ids.popitem(last=False)
        started = job.started_at or time.monotonic()
        log.event(outcome, job=job.id, engine=job.data.engine, frames=job.emitted, of=job.data.frames,
                  seconds=round(time.monotonic() - started, 2),
                  wall_seconds=round(time.monotonic() - job.submitted_at, 2), reason=reason)


def _submit_request(body, max_header_bytes: int | None) -> str | None:
    """The token of an undecodable message that is a SUBMIT naming one (the header
    itself parsed, within its limits; its buffers did not)."""
    if not body:
        return None
    try:
        hdr = protocol.parse_header(bytes(body[0].bytes if hasattr(body[0], "bytes") else body[0]),
                                    max_bytes=max_header_bytes)
    except protocol.ProtocolError:
        return None
    if hdr.get("type") == protocol.SUBMIT and isinstance(hdr.get("request"), str):
        return hdr["request"]
    return None


def main_loop(server: Server) -> int:
    server.install_signal_handlers()
    # The main loop and the workers hand frames to each other many times a
    # second; a shorter GIL switch interval cuts that hand-over latency.
    sys.setswitchinterval(0.0005)
    try:
        return server.serve_forever()
    except KeyboardInterrupt:
        server._shutdown()
        return 0
    finally:
        sys.stderr.flush()
