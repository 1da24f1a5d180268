"""The one job state machine, shared by the GUI (timer-driven) and headless
runs (a blocking loop) -- bpy-free.

States::

    queued -> exporting -> sending -> generating -> receiving -> done
         \\________\\___________\\___________\\____________\\-> failed | cancelled

* ``exporting``: the main thread renders/exports frames and hands them over.
* ``sending``: every frame is exported; the worker is still sending.
* ``generating``: every frame is sent; the server works, no result yet.
* ``receiving``: results are arriving. (Results that arrive earlier, while
  frames are still being exported, are written at once; the state then goes
  straight from ``sending``/``generating`` to ``receiving``.)

Thread-safety rules:

1. ``tick()``, ``cancel()`` and every callback given to the job (``export_frame``,
   ``on_result``) run on the MAIN thread only -- they may touch bpy.
2. The WORKER thread owns the network client (a ZeroMQ socket is not thread
   safe) and touches nothing but ``self._inbox`` (main -> worker: frames,
   end, cancel) and ``self._outbox`` (worker -> main: events), both
   ``queue.Queue``, plus the ``_stop`` Event. It never calls bpy and never
   mutates job attributes.
3. All job attributes (state, counters, error) are written by the main thread
   only, so the panel can read them without locks.
"""
from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import logs, messages, protocol
from .eta import format_eta, remaining_seconds



class ShotState(enum.StrEnum):
    QUEUED = "queued"
    EXPORTING = "exporting"
    SENDING = "sending"
    GENERATING = "generating"
    RECEIVING = "receiving"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


QUEUED, EXPORTING, SENDING, GENERATING, RECEIVING = (ShotState.QUEUED, ShotState.EXPORTING, ShotState.SENDING,
                                                     ShotState.GENERATING, ShotState.RECEIVING)
DONE, FAILED, CANCELLED = ShotState.DONE, ShotState.FAILED, ShotState.CANCELLED
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})
TRANSITIONS = {
    QUEUED: {EXPORTING, FAILED, CANCELLED},
    EXPORTING: {SENDING, FAILED, CANCELLED},
    SENDING: {GENERATING, RECEIVING, FAILED, CANCELLED},
    GENERATING: {RECEIVING, DONE, FAILED, CANCELLED},
    RECEIVING: {DONE, FAILED, CANCELLED},
    DONE: set(), FAILED: set(), CANCELLED: set(),
}


log = logs.get("addon")


class InvalidTransition(RuntimeError):
    pass


@dataclass
class Progress:
    """What the panel shows; written by the main thread only."""
    stage: str = QUEUED
    server_stage: str = ""
    fraction: float = 0.0
    frame: int | None = None
    step: int | None = None
    steps: int | None = None
    eta_s: float | None = None
    exported: int = 0
    sent: int = 0
    received: int = 0
    total: int = 0

    def text(self) -> str:
        final = self.stage in (DONE, FAILED, CANCELLED)
        parts = [self.stage if final else (self.server_stage or self.stage)]
        if self.frame is not None:
            parts.append(f"frame {self.frame + 1}/{self.total}")
        if self.step is not None and self.steps:
            parts.append(f"step {self.step}/{self.steps}")
        parts.append(f"{self.received}/{self.total} back")
        if self.eta_s is not None:
            parts.append(format_eta(self.eta_s))
        return " · ".join(parts)


def _network_worker(address: str, spec: protocol.JobSpec, reference, reference_keypoints,
                    inbox: queue.Queue, outbox: queue.Queue, stop: threading.Event,
                    client_options: dict) -> None:
    """Worker thread body: owns the Client; talks to the main thread via queues."""
    from . import client as client_mod
    cl = None
    try:
        cl = client_mod.Client(address, **client_options)
        remote = cl.submit(spec, reference, reference_keypoints)  # non-blocking: ACCEPTED comes as an event
        pending: deque = deque()
        ended = cancelled = False
        cancel_deadline = None
        while True:
            while True:
                try:
                    cmd = inbox.get_nowait()
                except queue.Empty:
                    break
                if cmd[0] == "frame":
                    pending.append(cmd[1:])
                elif cmd[0] == "end":
                    ended = True
                elif cmd[0] == "cancel" and not cancelled:
                    cancelled = True
                    pending.clear()
                    if not getattr(remote, "finished", False):
                        remote.cancel()
                    cancel_deadline = time.monotonic() + 5.0
            if stop.is_set():
                break  # the main thread gave up on the job (after telling the server, above)
            while pending and not cancelled and remote.can_send():
                i, arrays = pending.popleft()
                remote.send_frame(i, arrays)
                outbox.put(("sent", i))
            if ended and not pending and not cancelled:
                remote.end_input()
                ended = False
                outbox.put(("input_ended", None))
            finished = False
            for ev in cl.poll(timeout=0.02):
                outbox.put(("event", ev))
                if ev.type in protocol.TERMINAL_TYPES or ev.type == protocol.SERVER_LOST:
                    finished = True
            if finished or (cancel_deadline and time.monotonic() > cancel_deadline):
                break
    except Exception as exc:  # reported to the main thread in words
        outbox.put(("error", exc))
    finally:
        if cl is not None:
            try:
                cl.close()
            except Exception:
                pass
        outbox.put(("worker_exit", None))


class ShotJob:
    """One shot on its way through the server. Drive it by calling ``tick()``."""

    def __init__(self, *, spec: protocol.JobSpec, address: str, reference: np.ndarray,
                 reference_keypoints: np.ndarray | None,
                 export_frame: Callable[[int], dict], on_result: Callable[[int, np.ndarray, np.ndarray | None], None],
                 queue_bytes: int = 256 << 20, client_options: dict | None = None):
        self.spec = spec
        self.address = address
        self.state = QUEUED
        self.error: str | None = None
        self.error_code: str | None = None     # the server's ERROR code, when an ERROR ended the job
        self.progress = Progress(total=spec.frames)
        self.job_id: str | None = None
        self._export_frame = export_frame
        self._on_result = on_result
        # Exported frames wait for the worker (and the server's credit) in memory: at most ``queue_bytes`` of
        # them, and always at least one. Tiny shots export in one tick; a 4K frame waits for the previous ones.
        self._queue_bytes = queue_bytes
        self._queued: deque = deque()  # nbytes of each frame exported, not yet sent
        self._inbox: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_network_worker, name="inhabit-network", daemon=True,
            args=(address, spec, reference, reference_keypoints, self._inbox, self._outbox, self._stop,
                  dict(client_options or {})))
        self._accepted = False
        self._worker_done = False
        self._t0 = time.monotonic()
        self._first_result_t: float | None = None

    # -- state ---------------------------------------------------------------
    def _go(self, new: ShotState) -> None:
        if new == self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"job cannot go from {self.state} to {new}")
        logs.event(log, "shot_state", level=logging.DEBUG, job=self.job_id, old=self.state, new=new)
        self.state = new
        self.progress.stage = new

    def _fail(self, message: str) -> None:
        if self.state not in FINAL_STATES:
            self.error = message
            logs.event(log, "shot_failed", level=logging.WARNING, job=self.job_id, error=message)
            self._go(FAILED)
            self._inbox.put(("cancel",))  # a local failure must not leave the job running on the server
            self._stop.set()

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    # -- main-thread API -----------------------------------------------------
    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def cancel(self) -> None:
        """Stop at any stage. Frames already written stay on disk."""
        if self.finished:
            return
        self._go(CANCELLED)
        self._inbox.put(("cancel",))  # the worker tells the server, waits briefly for CANCELLED, then exits

    def join(self, timeout: float = 6.0) -> None:
        """Wait for the worker to let go of its socket (after a final state)."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def tick(self, export_budget_s: float = 0.05) -> bool:
        """Advance the job a little; return True once it is finished.

        Never blocks for long: drains the worker's events, then exports frames
        for at most ``export_budget_s`` (a GUI timer keeps Blender responsive).
        """
        t_end = time.monotonic() + export_budget_s  # results written while draining count against the budget
        self._drain()
        if self.state == EXPORTING:
            p = self.progress
            while p.exported < p.total and self.state == EXPORTING:
                if self._queued and sum(self._queued) >= self._queue_bytes:
                    self._drain()  # the worker may have sent some since: a longer budget is not held up by it
                    if (self._queued and sum(self._queued) >= self._queue_bytes) or self.state != EXPORTING:
                        break
                i = p.exported
                try:
                    arrays = self._export_frame(i)
                except Exception as exc:
                    self._fail(f"Exporting frame {i} failed: {exc}")
                    break
                self._queued.append(sum(getattr(a, "nbytes", 0) for a in arrays.values()))
                self._inbox.put(("frame", i, arrays))
                p.exported += 1
                if p.exported == p.total:
                    self._inbox.put(("end",))
                    self._go(SENDING)
                if time.monotonic() > t_end:
                    break
        return self.finished and (self._worker_done or not self._thread.is_alive())

    def wait_accepted(self, timeout: float) -> bool:
        """Block up to ``timeout`` s for the server's answer to SUBMIT; True once the job may export.
        A local server answers in milliseconds: the GUI exports in the same tick instead of the next one."""
        end = time.monotonic() + timeout
        while self.state == QUEUED:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                self._handle(*self._outbox.get(timeout=left))
            except queue.Empty:
                break
        self._drain()
        return self.state == EXPORTING

    # -- events from the worker ---------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                kind, payload = self._outbox.get_nowait()
            except queue.Empty:
                return
            self._handle(kind, payload)

    def _handle(self, kind: str, payload) -> None:
        if kind == "worker_exit":
            self._worker_done = True
            if not self.finished:
                self._fail("The network worker stopped before the job finished.")
        elif self.finished and kind != "event":
            return
        elif kind == "sent":
            self.progress.sent += 1
            if self._queued:
                self._queued.popleft()
        elif kind == "input_ended":
            if self.state == SENDING:
                self._go(GENERATING)
        elif kind == "error":
            self._fail(describe_error(payload, self.address))
        elif kind == "event":
            self._on_event(payload)

    def _on_event(self, ev) -> None:
        msg = ev.message
        p = self.progress
        if isinstance(msg, messages.Accepted):
            self._accepted = True
            self.job_id = msg.job
            if self.state == QUEUED:
                self._go(EXPORTING)
        elif isinstance(msg, messages.Progress) and not self.finished:
            p.server_stage = msg.stage or p.server_stage
            p.fraction = float(msg.fraction)
            p.frame, p.step, p.steps = msg.frame, msg.step, msg.steps
            if msg.eta_s is not None:
                p.eta_s = float(msg.eta_s)
        elif isinstance(msg, messages.Result):
            if self.state == CANCELLED:
                return  # late frames after a cancel are dropped
            self._on_result(msg.index, ev.arrays[protocol.RESULT_RGBA], ev.arrays.get(protocol.RESULT_MATTE))
            p.received += 1
            now = time.monotonic()
            if self._first_result_t is None:
                self._first_result_t = now
            elif p.received > 1:
                # Timed from the first result: the frames before it waited for the model to load.
                p.eta_s = remaining_seconds(now - self._first_result_t, (p.received - 1) / max(1, p.total - 1))
            if self.state in (SENDING, GENERATING):
                self._go(RECEIVING)
        elif isinstance(msg, messages.Done):
            if self.state in (GENERATING, RECEIVING):
                if p.received < p.total:
                    self._fail(f"The server finished after {p.received} of {p.total} frames.")
                else:
                    p.eta_s = 0.0
                    self._go(DONE)
            elif not self.finished:
                self._fail(f"The server reported done while the job was still {self.state}.")
        elif isinstance(msg, messages.Cancelled):
            if not self.finished:
                self._fail("The server cancelled the job (it may be shutting down); start it again.")
        elif isinstance(msg, messages.Error):
            if not self.finished:
                self.error_code = msg.code
                field = f" (field {msg.field})" if msg.field else ""
                self._fail(f"The server refused the job: {msg.message}{field}.")
        elif ev.type == protocol.SERVER_LOST:
            if not self.finished:
                self._fail(f"Lost the server at {self.address} mid-job after {p.received} of {p.total} frames; "
                           "the frames received are kept. Restart the server and run the shot again.")


# ERROR codes that, answering a SUBMIT (before ACCEPTED), mean the shot's own
# settings were refused: bad input, not a failure worth retrying.
SUBMIT_REFUSALS = frozenset((protocol.E_BAD_PARAM, protocol.E_UNKNOWN_PARAM, protocol.E_MISSING_INPUT,
                             protocol.E_TOO_LARGE, protocol.E_UNKNOWN_ENGINE, protocol.E_BAD_DTYPE,
                             protocol.E_BAD_SHAPE))


def refused_as_bad_input(job: "ShotJob") -> bool:
    """Did the server refuse this job's SUBMIT for its settings (no job was ever opened)?"""
    return job.job_id is None and job.error_code in SUBMIT_REFUSALS


def describe_error(exc: BaseException, address: str) -> str:
    """One sentence for a client exception: what happened and what to do."""
    from .address import AddressError
    from .client import HandshakeRefused, JobFailed, ProtocolMismatch, ServerTimeout, ServerUnreachable
    from .curve_keys import KeyFileError
    if isinstance(exc, (HandshakeRefused, AddressError, KeyFileError)):  # their words already say what to fix
        text = str(exc).rstrip(".")
        return text[:1].upper() + text[1:] + "."
    if isinstance(exc, ServerUnreachable):
        return (f"Cannot reach the Inhabit server at {address}: start it with 'inhabit serve' "
                "(or the Start Local Server button) or fix the address.")
    if isinstance(exc, ProtocolMismatch):
        return f"The server at {address} speaks another protocol version ({exc}); update the add-on or the server."
    if isinstance(exc, ServerTimeout):
        return f"The server at {address} stopped answering ({exc}); check that it is still running."
    if isinstance(exc, JobFailed):
        return f"The server refused the job: {exc}"
    return f"{type(exc).__name__}: {exc}"
