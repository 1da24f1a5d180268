"""The worker side of the server: the queue of admitted jobs and the worker
threads that run engines on them.

Thread boundary: the socket loop (main thread) calls ``enqueue``, ``wake``,
``remove`` and ``queued_count``; everything else here runs on worker
threads. Workers never touch the ROUTER socket: each finished message is
encoded on the worker and handed to the loop through the ``Outbox``.
"""
from __future__ import annotations

import threading
import time

from backend.server.engines.base import EngineInputError, JobCancelled
from blender_addon.core import messages, protocol

from . import log
from .admission import ranges
from .config import ServerConfig
from .job import FramesStarved, JobState, ServerJob, WorkerContext
from .outbox import Outbox, Outgoing


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
            instance = self.cls(device=self.device, weights=self.config.weights,
                                options=self.config.engine_options.get(self.cls.name), limits=self.config.limits)
            instance.load()
            self.instance = instance
            self._loaded_names.add(self.cls.name)
            log.event("engine_loaded", engine=self.cls.name, device=self.device,
                      seconds=round(time.monotonic() - t0, 2))
        return self.instance


class Scheduler:
    def __init__(self, config: ServerConfig, engine_classes: dict, outbox: Outbox, jobs: dict[str, ServerJob]):
        self.config = config
        self.engine_classes = engine_classes
        self.outbox = outbox
        self.jobs = jobs                        # the loop's table; workers only read it
        # Jobs waiting for a worker, oldest first. A worker takes the oldest job
        # that can start (see ServerJob.ready): a streaming job whose first
        # frames are still on their way does not hold a worker meanwhile.
        self.queued: list[str] = []
        self.cond = threading.Condition()
        self.stopping = False
        self.running: set[str] = set()
        self.loaded_engines: set[str] = set()  # names some worker has loaded (INFO)
        self.threads: list[threading.Thread] = []

    # -- called by the socket loop -------------------------------------------------------
    def start(self) -> None:
        for n in range(max(1, self.config.workers)):
            t = threading.Thread(target=self._worker, args=(n,), name=f"inhabit-worker-{n}", daemon=True)
            t.start()
            self.threads.append(t)

    def enqueue(self, job: ServerJob) -> int:
        """Queue ``job``; returns its position (0 = next)."""
        with self.cond:
            position = len(self.queued)
            self.queued.append(job.id)
            job.state = JobState.QUEUED
            self.cond.notify_all()
        return position

    def wake(self) -> None:
        """A queued job may be able to start now (its first frames or END_INPUT arrived)."""
        with self.cond:
            self.cond.notify_all()

    def remove(self, job_id: str) -> None:
        with self.cond:
            if job_id in self.queued:
                self.queued.remove(job_id)

    def describe(self) -> dict:
        """Extra INFO fields of this scheduler (the cluster's slots with --cluster)."""
        return {}

    # Hooks for a scheduler that moves jobs' bytes on sockets of its own (the cluster's data plane):
    # the socket loop polls them, and frames go out from the loop itself, with no thread in between.
    def data_sockets(self) -> list:
        """Sockets the loop polls for this scheduler (``on_data`` reads them)."""
        return []

    def on_data(self, sock, deliver) -> None:
        """``sock`` is readable; ``deliver(Outgoing)`` hands a message to its client."""

    def frames_arrived(self, job: ServerJob) -> None:
        """The loop stored frames for ``job`` (once per burst)."""
        job.wake()

    def tick(self) -> bool:
        """Called on every turn of the loop; True when ``data_sockets`` changed."""
        return False

    def others_waiting(self) -> bool:
        """Is a queued job ready to start (so a worker starving for frames should give way)?"""
        with self.cond:
            for job_id in self.queued:
                job = self.jobs.get(job_id)
                if job is not None and not job.cancelled and job.ready():
                    return True
        return False

    def queued_count(self) -> int:
        with self.cond:
            return len(self.queued)

    def stop(self, timeout: float = 3.0) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # -- worker threads ------------------------------------------------------------------
    def _take_ready_job(self) -> ServerJob | None:
        """Block until the oldest job that can start is there (None when the server stops)."""
        with self.cond:
            while not self.stopping:
                for job_id in self.queued:
                    job = self.jobs.get(job_id)  # dict read of a reference: safe across threads
                    if job is not None and (job.cancelled or job.ready()):
                        self.queued.remove(job_id)
                        if not job.cancelled:
                            return job
                        break  # a cancelled one is dropped; look again
                else:
                    self.cond.wait(0.5)
            return None

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
        def send(msg: messages.Header, arrays):
            # Encoded here, on the worker: the main loop only adds the client's identity.
            self.outbox.put(ringer, Outgoing(job.id, msg.TYPE, protocol.encode(msg, arrays)))

        job.state = JobState.RUNNING
        job.started_at = time.monotonic()
        self.running.add(job.id)
        log.event("started", job=job.id, engine=job.data.engine)
        ctx = WorkerContext(job, send, limits=self.config.limits, others_waiting=self.others_waiting)
        try:
            if slot.instance is None:
                ctx.progress("loading", 0.0)
            engine = slot.get()
            ctx.check_cancelled()
            engine.run(ctx)
            ctx.check_cancelled()
            missing = [i for i in range(job.data.frames) if i not in ctx.emitted]
            if missing:
                raise RuntimeError(f"engine {job.data.engine!r} finished without emitting frames {ranges(missing)}")
            send(messages.Done(job=job.id, frames=len(ctx.emitted),
                               seconds=round(time.monotonic() - job.started_at, 3)), None)
        except FramesStarved as exc:
            log.event("starved", job=job.id, reason=str(exc))
            send(messages.Error(protocol.E_MISSING_INPUT, str(exc), field="frames", job=job.id), None)
        except JobCancelled:
            send(messages.Cancelled(job=job.id, reason=job.cancel_reason), None)
        except EngineInputError as exc:
            param = not exc.field or exc.field.startswith("params.")
            send(messages.Error(protocol.E_BAD_PARAM if param else protocol.E_MISSING_INPUT, str(exc),
                                field=exc.field, job=job.id), None)
        except Exception as exc:
            if job.cancelled:
                send(messages.Cancelled(job=job.id, reason=job.cancel_reason), None)
            else:
                log.event("engine_exception", job=job.id, error=f"{type(exc).__name__}: {exc}")
                send(messages.Error(protocol.E_ENGINE_FAILED, f"engine {job.data.engine!r} failed: "
                                    f"{type(exc).__name__}: {exc}", job=job.id), None)
        finally:
            self.running.discard(job.id)
