"""The server's main loop: one thread owns the ROUTER socket.

Messages from clients are decoded and checked here; jobs run on worker
threads, which hand their encoded messages (RESULT, PROGRESS, CREDIT, DONE,
...) to this loop through the ``Outbox`` and ring its bell, so no zmq socket
is ever shared between threads.
"""
from __future__ import annotations

import collections
import json
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import zmq

from backend.engines.base import EngineInputError, JobCancelled, JobData
from blender_addon.core import protocol
from blender_addon.core.wire import EVENTS, NOBLOCK, POLLIN, recv_parts, send_parts

from . import log
from .handshakes import HandshakeWatch
from .job import ServerJob, WorkerContext
from .outbox import Outbox, Outgoing

SERVER_VERSION = "0.1.0"
OUTBOX = "inproc://inhabit-outbox"
HEARTBEAT_CHECK_S = 0.25


@dataclass
class ServerConfig:
    bind: str = protocol.DEFAULT_ADDRESS
    device: str = "cpu"
    weights: str | None = None
    jobs: int = 1
    gpus: int = 0                      # CUDA devices seen; workers are spread over them
    eager_load: bool = False
    limits: dict = field(default_factory=lambda: dict(protocol.DEFAULT_LIMITS))
    max_queue: int = 64

    def worker_device(self, n: int) -> str:
        """Worker n's device: its own GPU while there are enough (cuda:0, cuda:1, ...),
        then round robin; every worker on "cpu" otherwise."""
        if self.device == "cuda" and self.gpus > 0:
            return f"cuda:{n % self.gpus}"
        return self.device


class EngineSlot:
    """One engine class and one worker's lazily loaded instance of it.

    Each worker owns its instances: engines keep per-run state (a diffusion
    scheduler's timesteps, ReferenceNet features held by hooks), so two jobs
    must never run on one instance at once. Only the owning worker thread calls
    ``get``."""

    def __init__(self, cls, config: ServerConfig, device: str, loaded_names: set):
        self.cls = cls
        self.config = config
        self.device = device
        self.instance = None
        self._loaded_names = loaded_names      # shared, for INFO's "loaded" flag

    def get(self):
        if self.instance is None:
            t0 = time.monotonic()
            instance = self.cls(device=self.device, weights=self.config.weights)
            instance.load()
            self.instance = instance
            self._loaded_names.add(self.cls.name)
            log.event("engine_loaded", engine=self.cls.name, device=self.device,
                      seconds=round(time.monotonic() - t0, 2))
        return self.instance


class Server:
    def __init__(self, engine_classes, config: ServerConfig, *, security=None):
        self.config = config
        self.limits = config.limits
        self.engine_classes = {cls.name: cls for cls in engine_classes}
        # Construction is cheap by contract (heavy work lives in load()), so one
        # unloaded instance per engine checks jobs at submit, on this thread.
        self.validators = {cls.name: cls(device=config.device, weights=config.weights) for cls in engine_classes}
        self.loaded_engines: set[str] = set()  # names some worker has loaded (INFO)
        self.ctx = zmq.Context.instance()
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
        # Jobs waiting for a worker, oldest first. A worker takes the oldest job
        # that can start (see ServerJob.ready): a streaming job whose first
        # frames are still on their way does not hold a worker meanwhile.
        self.queued: list[str] = []
        self.queue_cond = threading.Condition()
        self.stopping = False
        self.running: set[str] = set()
        self.stop = threading.Event()
        self.workers: list[threading.Thread] = []
        self.fed: set[ServerJob] = set()      # jobs given frames since their worker was last woken

    # -- life cycle ------------------------------------------------------------------
    def serve_forever(self) -> int:
        for n in range(max(1, self.config.jobs)):
            t = threading.Thread(target=self._worker, args=(n,), name=f"inhabit-worker-{n}", daemon=True)
            t.start()
            self.workers.append(t)
        log.event("listening", address=self.address, engines=",".join(self.engine_classes),
                  device=self.config.device, jobs=self.config.jobs)
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.outbox.bell, zmq.POLLIN)
        if self.handshakes is not None:
            poller.register(self.handshakes.socket, zmq.POLLIN)
        next_hb = time.monotonic() + HEARTBEAT_CHECK_S
        while not self.stop.is_set():
            events = dict(poller.poll(100))
            if self.outbox.bell in events:
                self._drain_outbox()
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
                    job.wake()
                    waiting_to_start |= job.state == "queued"
                if waiting_to_start:  # its first frames may have arrived: let the workers look
                    with self.queue_cond:
                        self.queue_cond.notify_all()
            if time.monotonic() >= next_hb:
                self._check_heartbeats()
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
            self._finish(job, protocol.error_header(protocol.E_SHUTDOWN, "the server is shutting down",
                                                    job=job.id), outcome="cancelled", reason="shutdown")
        with self.queue_cond:
            self.stopping = True
            self.queue_cond.notify_all()
        deadline = time.monotonic() + 3.0
        for t in self.workers:
            t.join(max(0.0, deadline - time.monotonic()))
        self.outbox.close()
        if self.handshakes is not None:
            self.handshakes.close()
        self.router.close(500)
        if self.auth:
            self.auth.stop()

    # -- sending ---------------------------------------------------------------------
    def _send(self, identity: bytes, hdr: dict, arrays=None):
        try:
            send_parts(self.router, [identity, *protocol.encode(hdr, arrays)], NOBLOCK)
        except zmq.Again:
            log.event("dropped_message", type=hdr.get("type"), reason="client not reading")

    def _reply_error(self, identity: bytes, err: protocol.ProtocolError, **extra):
        hdr = err.to_header()
        hdr.update(extra)
        self._send(identity, hdr)

    def _drain_outbox(self):
        for out in self.outbox.take_all():
            job = self.jobs.get(out.job_id)
            if job is None:
                continue  # finished or cancelled meanwhile: the client was already told
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
        identity = frames[0].bytes
        body = frames[1:]
        self.last_seen[identity] = time.monotonic()
        try:
            hdr, arrays = protocol.decode(body, max_bytes=self.limits["max_message_bytes"],
                                          allowed_types=protocol.CLIENT_TYPES)
        except protocol.ProtocolError as err:
            # A SUBMIT refused while decoding (buffer count, byte length, NaN) still
            # names its request, so the client knows which submit failed.
            self._fail_owned(identity, err, **_submit_request(body))
            return
        try:
            handler = {
                protocol.HELLO: self._on_hello, protocol.PING: self._on_ping, protocol.SUBMIT: self._on_submit,
                protocol.FRAME: self._on_frame, protocol.END_INPUT: self._on_end_input,
                protocol.CANCEL: self._on_cancel,
            }[hdr["type"]]
            handler(identity, hdr, arrays)
        except protocol.ProtocolError as err:
            self._fail_owned(identity, err)
        except Exception as exc:  # a server bug must not stop service for everyone
            log.event("internal_error", error=repr(exc))
            self._send(identity, protocol.error_header(protocol.E_BAD_HEADER, f"server could not handle message: {exc}",
                                                       job=hdr.get("job") if isinstance(hdr.get("job"), str) else None))

    def _fail_owned(self, identity: bytes, err: protocol.ProtocolError, **extra):
        """Reply ERROR; an error about one of this client's own open jobs ends that job."""
        job = self.jobs.get(err.job) if err.job else None
        if job is not None and job.identity == identity:
            job.cancel("failed")
            self._finish(job, err.to_header() | extra, outcome="failed", reason=err.code)
        else:
            self._reply_error(identity, err, **extra)

    def _on_hello(self, identity, hdr, arrays):
        self._send(identity, protocol.header(protocol.INFO, **self.info()))

    def _on_ping(self, identity, hdr, arrays):
        self._send(identity, protocol.header(protocol.PONG, t=hdr.get("t")))

    def info(self) -> dict:
        with self.queue_cond:
            queued = len(self.queued)
        return {
            "server_version": SERVER_VERSION,
            "protocol_version": protocol.PROTOCOL_VERSION,
            "engines": [cls.describe() | {"loaded": name in self.loaded_engines}
                        for name, cls in self.engine_classes.items()],
            "device": self.config.device,
            "worker_devices": [self.config.worker_device(n) for n in range(max(1, self.config.jobs))],
            "limits": dict(self.limits),
            "concurrent_jobs": self.config.jobs,
            "queue": {"running": len(self.running), "queued": queued, "open_jobs": len(self.jobs)},
            "clients": len(self.by_client),
            # Heavy ML is imported only when an engine loads; this shows whether it has been.
            "torch_imported": "torch" in sys.modules,
            "frames_held": sum(len(j.frames) for j in self.jobs.values()),
            "bytes_held": sum(j.held_bytes() for j in self.jobs.values()),
        }

    def _on_submit(self, identity, hdr, arrays):
        request = hdr.get("request") if isinstance(hdr.get("request"), str) else ""
        try:
            spec = protocol.JobSpec.from_header(hdr, self.limits)
            cls = self.engine_classes.get(spec.engine)
            if cls is None:
                raise protocol.ProtocolError(protocol.E_UNKNOWN_ENGINE,
                                             f"unknown engine {spec.engine!r}; this server runs "
                                             f"{sorted(self.engine_classes)}", field="submit.engine")
            params = protocol.validate_params((*protocol.COMMON_PARAMS, *cls.params), spec.params)
            extra = sorted(set(arrays) - {protocol.REFERENCE, protocol.REFERENCE_KEYPOINTS})
            if extra:
                raise protocol.ProtocolError(protocol.E_BAD_BUFFERS, f"submit carries unknown buffer {extra[0]!r}; "
                                             f"expected {protocol.REFERENCE!r} and optionally {protocol.REFERENCE_KEYPOINTS!r}",
                                             field=f"buffers.{extra[0]}")
            reference = arrays.get(protocol.REFERENCE)
            if reference is not None:
                protocol.check_reference(reference, max_pixels=self.limits["max_reference_pixels"])
            elif cls.needs_reference:
                raise protocol.ProtocolError(protocol.E_MISSING_INPUT, f"engine {cls.name!r} needs a reference image buffer "
                                             f"named {protocol.REFERENCE!r}", field=f"submit.{protocol.REFERENCE}")
            ref_kp = arrays.get(protocol.REFERENCE_KEYPOINTS)
            if ref_kp is not None:
                protocol.check_reference_keypoints(ref_kp)
            if len(self.jobs) >= self.config.max_queue:
                raise protocol.ProtocolError(protocol.E_BUSY, f"the server holds {len(self.jobs)} jobs; try again later")
            job_id = secrets.token_hex(8)
            data = JobData(job_id=job_id, engine=cls.name, width=spec.width, height=spec.height, frames=spec.frames,
                           params=params, objects=list(spec.objects),
                           reference=None if reference is None else reference.copy(),
                           reference_keypoints=None if ref_kp is None else ref_kp.copy(), name=spec.name)
            if ref_kp is None and cls.needs_reference_keypoints:
                raise protocol.ProtocolError(protocol.E_MISSING_INPUT, f"engine {cls.name!r} needs the reference's "
                                             f"keypoints: send a float32 [{protocol.NUM_KEYPOINTS}, 4] buffer named "
                                             f"{protocol.REFERENCE_KEYPOINTS!r} (x, y in reference-image pixels)"
                                             + (f" {cls.reference_keypoints_hint}" if cls.reference_keypoints_hint
                                                else ""), field=f"submit.{protocol.REFERENCE_KEYPOINTS}")
            try:
                self.validators[cls.name].validate(data)
            except EngineInputError as exc:
                raise protocol.ProtocolError(protocol.E_BAD_PARAM, str(exc), field=exc.field) from None
        except protocol.ProtocolError as err:
            self._reply_error(identity, err, request=request)
            log.event("rejected", request=request, code=err.code, field=err.field)
            return
        # Streaming engines keep a sliding window; the others need every frame before they start.
        window = max(1, int(cls.input_window)) if cls.streaming else spec.frames
        # Never more than the credit, or the job would wait for frames the client may not send.
        start_after = min(window, spec.frames, max(1, int(self.validators[cls.name].frames_to_start(data))))
        job = ServerJob(data, identity, cls, window, start_after)
        self.jobs[job_id] = job
        self.by_client[identity].add(job_id)
        log.event("submitted", job=job_id, engine=cls.name, frames=spec.frames, size=f"{spec.width}x{spec.height}",
                  name=spec.name)
        position = self._enqueue(job) if cls.streaming else None
        self._send(identity, protocol.header(protocol.ACCEPTED, job=job_id, request=request, credit=job.credit,
                                             window=window, queue_position=position if position is not None else 0,
                                             streaming=bool(cls.streaming)))
        log.event("accepted", job=job_id, credit=job.credit, queue_position=position)

    def _enqueue(self, job: ServerJob) -> int:
        with self.queue_cond:
            position = len(self.queued)
            self.queued.append(job.id)
            job.state = "queued"
            self.queue_cond.notify_all()
        return position

    def _take_ready_job(self) -> ServerJob | None:
        """Worker side: block until the oldest job that can start is there
        (None when the server stops)."""
        with self.queue_cond:
            while not self.stopping:
                for job_id in self.queued:
                    job = self.jobs.get(job_id)  # dict read of a reference: safe across threads
                    if job is not None and (job.cancelled or job.ready()):
                        self.queued.remove(job_id)
                        if not job.cancelled:
                            return job
                        break  # a cancelled one is dropped; look again
                else:
                    self.queue_cond.wait(0.5)
            return None

    def _own_job(self, identity, hdr) -> ServerJob:
        job_id = hdr.get("job")
        if not isinstance(job_id, str):
            raise protocol.ProtocolError(protocol.E_BAD_HEADER, f"{hdr['type']}.job must be a job id string",
                                         field=f"{hdr['type']}.job")
        job = self.jobs.get(job_id)
        if job is None or job.identity != identity:  # other clients' jobs do not exist for you
            raise protocol.ProtocolError(protocol.E_UNKNOWN_JOB, f"no open job {job_id!r} for this client",
                                         field=f"{hdr['type']}.job")
        return job

    def _on_frame(self, identity, hdr, arrays):
        if self._finished_here(identity, hdr):
            return
        job = self._own_job(identity, hdr)
        d = job.data
        index = hdr.get("index")
        err = lambda code, msg, fld="frame.index": protocol.ProtocolError(code, msg, field=fld, job=job.id)  # noqa: E731
        if isinstance(index, bool) or not isinstance(index, int):
            raise err(protocol.E_BAD_INDEX, f"frame.index must be an integer, got {index!r}")
        if not 0 <= index < d.frames:
            raise err(protocol.E_BAD_INDEX, f"frame index {index} is outside 0..{d.frames - 1} (the job declared {d.frames} frames)")
        if job.input_ended:
            raise err(protocol.E_BAD_INDEX, f"frame {index} arrived after end_input")
        if index in job.received:
            raise err(protocol.E_DUPLICATE_FRAME, f"frame {index} was already sent")
        if index >= job.credit:
            raise err(protocol.E_WINDOW_EXCEEDED, f"frame {index} is beyond the granted credit (< {job.credit}); "
                      f"wait for a CREDIT message")
        protocol.check_frame_inputs(arrays, height=d.height, width=d.width, n_objects=len(d.objects), job=job.id)
        missing = [n for n in job.engine_cls.required_inputs if n not in arrays]
        if missing:
            raise err(protocol.E_MISSING_INPUT, f"frame {index} lacks required input {missing[0]!r} for engine "
                      f"{d.engine!r} (required: {list(job.engine_cls.required_inputs)})", f"frame.{missing[0]}")
        wanted = set(job.engine_cls.required_inputs) | set(job.engine_cls.optional_inputs)
        job.add_frame(index, {k: v for k, v in arrays.items() if k in wanted})
        self.fed.add(job)

    def _on_end_input(self, identity, hdr, arrays):
        if self._finished_here(identity, hdr):
            return
        job = self._own_job(identity, hdr)
        missing = [i for i in range(job.data.frames) if i not in job.received]
        if missing:
            raise protocol.ProtocolError(protocol.E_MISSING_INPUT,
                                         f"end_input before frames {_ranges(missing)} arrived "
                                         f"(the job declared {job.data.frames} frames)", field="frames", job=job.id)
        job.end_input()
        if job.state == "accepted":
            self._enqueue(job)
        elif job.state == "queued":  # a streaming job short of its first frames can start now
            with self.queue_cond:
                self.queue_cond.notify_all()

    def _finished_here(self, identity, hdr) -> bool:
        """True for a job of this client that has already ended. A streaming
        engine may finish before the client's last FRAME, END_INPUT or CANCEL
        reaches us; its terminal message is on the way, so those are ignored."""
        job_id = hdr.get("job")
        return isinstance(job_id, str) and self.finished_ids.get(job_id) == identity

    def _on_cancel(self, identity, hdr, arrays):
        if self._finished_here(identity, hdr):
            return
        job = self._own_job(identity, hdr)
        job.cancel("cancelled")
        if job.state != "running":  # nothing will run it: answer now
            self._finish(job, protocol.header(protocol.CANCELLED, job=job.id, reason="cancelled"), outcome="cancelled")
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

    def _finish(self, job: ServerJob, hdr: dict | None, *, outcome: str, reason: str | None = None):
        """Forget a job (frames freed) and send its terminal message if given."""
        if job.id not in self.jobs:
            return
        if hdr is not None:
            self._send(job.identity, hdr)
        del self.jobs[job.id]
        ids = self.by_client.get(job.identity)
        if ids is not None:
            ids.discard(job.id)
            if not ids:
                self.by_client.pop(job.identity, None)
        with self.queue_cond:
            if job.id in self.queued:
                self.queued.remove(job.id)
        with job.cond:
            job.frames.clear()
            job.state = "finished"
        self.finished_ids[job.id] = job.identity
        while len(self.finished_ids) > 1000:
            self.finished_ids.popitem(last=False)
        started = job.started_at or time.monotonic()
        log.event(outcome, job=job.id, engine=job.data.engine, frames=job.emitted, of=job.data.frames,
                  seconds=round(time.monotonic() - started, 2),
                  wall_seconds=round(time.monotonic() - job.submitted_at, 2), reason=reason)

    # -- worker threads --------------------------------------------------------------
    def _worker(self, n: int):
        ringer = self.outbox.new_ringer()
        device = self.config.worker_device(n)
        slots = {name: EngineSlot(cls, self.config, device, self.loaded_engines)
                 for name, cls in self.engine_classes.items()}
        try:
            if self.config.eager_load:
                for slot in slots.values():
                    try:
                        slot.get()
                    except Exception as exc:  # the first job will try again and report it
                        log.event("engine_load_failed", engine=slot.cls.name, device=device,
                                  error=f"{type(exc).__name__}: {exc}")
            while (job := self._take_ready_job()) is not None:
                self._run_job(job, slots[job.data.engine], ringer)
        finally:
            ringer.close()

    def _run_job(self, job: ServerJob, slot: EngineSlot, ringer):
        def send(hdr, arrays):
            # Encoded here, on the worker: the main loop only adds the client's identity.
            self.outbox.put(ringer, Outgoing(job.id, hdr["type"], protocol.encode(hdr, arrays)))

        job.state = "running"
        job.started_at = time.monotonic()
        self.running.add(job.id)
        log.event("started", job=job.id, engine=job.data.engine)
        ctx = WorkerContext(job, send)
        try:
            if slot.instance is None:
                ctx.progress("loading", 0.0)
            engine = slot.get()
            ctx.check_cancelled()
            engine.run(ctx)
            ctx.check_cancelled()
            missing = [i for i in range(job.data.frames) if i not in ctx.emitted]
            if missing:
                raise RuntimeError(f"engine {job.data.engine!r} finished without emitting frames {_ranges(missing)}")
            send(protocol.header(protocol.DONE, job=job.id, frames=len(ctx.emitted),
                                 seconds=round(time.monotonic() - job.started_at, 3)), None)
        except JobCancelled:
            send(protocol.header(protocol.CANCELLED, job=job.id, reason=job.cancel_reason), None)
        except EngineInputError as exc:
            send(protocol.error_header(protocol.E_MISSING_INPUT if exc.field else protocol.E_BAD_PARAM,
                                       str(exc), field=exc.field, job=job.id), None)
        except Exception as exc:
            if job.cancelled:
                send(protocol.header(protocol.CANCELLED, job=job.id, reason=job.cancel_reason), None)
            else:
                log.event("engine_exception", job=job.id, error=f"{type(exc).__name__}: {exc}")
                send(protocol.error_header(protocol.E_ENGINE_FAILED, f"engine {job.data.engine!r} failed: "
                                           f"{type(exc).__name__}: {exc}", job=job.id), None)
        finally:
            self.running.discard(job.id)


def _submit_request(body) -> dict:
    """{"request": token} when the undecodable message is a SUBMIT naming one."""
    try:
        hdr = json.loads(bytes(body[0].bytes if hasattr(body[0], "bytes") else body[0]))
    except (IndexError, ValueError, UnicodeDecodeError, TypeError):
        return {}
    if isinstance(hdr, dict) and hdr.get("type") == protocol.SUBMIT and isinstance(hdr.get("request"), str):
        return {"request": hdr["request"]}
    return {}


def _ranges(indices) -> str:
    """[0,1,2,5] -> '0-2, 5' (short messages for long shots)."""
    out, start, prev = [], None, None
    for i in indices:
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}-{prev}" if prev > start else str(start))
            start = prev = i
    if start is not None:
        out.append(f"{start}-{prev}" if prev > start else str(start))
    text = ", ".join(out[:8])
    return text + (", ..." if len(out) > 8 else "")


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
