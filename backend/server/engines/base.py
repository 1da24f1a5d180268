"""The engine plug-in interface: what the server asks of a generator.

An engine declares its per-frame inputs and its parameters (both go to clients
in INFO), and runs one job at a time through a ``JobContext`` the server gives
it. The engine never sees sockets: it pulls conditioning frames, pushes
results and progress, and checks for cancellation, all through the context.

Thread-safety contract: ``Engine.run`` is called on a server worker thread.
Every ``JobContext`` method may be called from that thread only. ``load`` is
called once, on a worker thread, before the first job; heavy imports (torch,
diffusers) belong in ``load`` or ``run``, never at module import, so that
``inhabit serve`` starts fast and the registry can list engines cheaply.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from blender_addon.core import logs
from blender_addon.core.protocol import ParamSpec
from models.errors import InputError


class JobCancelled(Exception):
    """Raised inside ``Engine.run`` by JobContext calls once the job is cancelled."""


# The job's data cannot be used by this engine (becomes an ERROR reply that
# names ``field``, e.g. "frame.keypoints"). One class shared with the pipelines
# and the warp below the engines, so nothing re-wraps or parses messages.
EngineInputError = InputError


@dataclass
class AdmittedJob:
    """A job as engines see it (``ctx.job``): a client's ``protocol.JobSpec``
    after the server admitted it -- parameters checked and defaulted, the
    reference buffers attached, a job id given. The server's own bookkeeping of
    the same job (frames held, credit, state) is ``backend.server.job.ServerJob``;
    the client's handle is ``blender_addon.core.client.RemoteJob``, the add-on's
    state machine ``blender_addon.core.jobs.ShotJob``."""
    job_id: str
    engine: str
    width: int
    height: int
    frames: int
    params: dict                       # validated, defaults filled (incl. "seed")
    objects: list = field(default_factory=list)
    reference: np.ndarray | None = None            # uint8 [h, w, 3|4]
    reference_keypoints: np.ndarray | None = None  # float32 [K, 4] or None
    name: str = ""
    # Where the client placed the keypoints (conventions.KEYPOINT_PLACEMENTS). Engines always see
    # the estimators' neck: admission moves a "rig" client's neck between its shoulders.
    keypoint_placement: str = "estimator"


class JobContext(abc.ABC):
    """The server side of one running job, as the engine sees it."""

    job: AdmittedJob

    @abc.abstractmethod
    def frame(self, index: int) -> Mapping[str, np.ndarray]:
        """Conditioning of frame ``index`` (names from protocol.FRAME_INPUTS).

        Blocks until that frame has arrived. Raises JobCancelled when the job
        is cancelled while waiting. Frames stay available until released.
        """

    @abc.abstractmethod
    def release(self, upto: int) -> None:
        """The engine needs no frame below ``upto`` any more; frees memory and
        lets the client send more (the server's input window slides)."""

    @abc.abstractmethod
    def emit(self, index: int, rgba: np.ndarray, matte: np.ndarray) -> None:
        """Send result frame ``index``: uint8 [H, W, 4] composite and uint8
        [H, W] character matte. Each index exactly once, in any order.
        The arrays are sent without a copy: do not write into them afterwards."""

    @abc.abstractmethod
    def progress(self, stage: str, fraction: float, *, frame: int | None = None,
                 step: int | None = None, steps: int | None = None) -> None:
        """Report progress; the server adds the ETA and rate-limits sends."""

    @abc.abstractmethod
    def check_cancelled(self) -> None:
        """Raise JobCancelled if the job has been cancelled. Call it at least
        once per engine step so cancel takes effect within one step."""

    @property
    @abc.abstractmethod
    def cancelled(self) -> bool:
        """True once cancellation was requested."""


class Engine(abc.ABC):
    """A generator the server can run. Subclass, set the class attributes,
    implement ``run``; register with ``backend.server.engines.registry.register``."""

    name: str = ""
    description: str = ""
    # Per-frame inputs, names from protocol.FRAME_INPUTS.
    required_inputs: Sequence[str] = ()
    optional_inputs: Sequence[str] = ()
    # Whether the job needs a reference image / reference keypoints
    # (float32 [18, 4], x and y in reference-image pixels).
    needs_reference: bool = True
    needs_reference_keypoints: bool = False
    reference_keypoints_hint: str = ""     # added to the missing_input sentence (e.g. an optional detector)
    # Parameters besides the common ones (seed).
    params: Sequence[ParamSpec] = ()
    # Frames the engine needs in memory at once; the server's input window
    # is at least this large. Streaming engines start before end_input.
    input_window: int = 8
    streaming: bool = True
    # Engines that cannot run without a weights folder; `inhabit serve`
    # refuses (or, for default engines, skips) them when --weights is absent,
    # so a client never queues a job that can only fail.
    needs_weights: bool = False
    # Where a resumed shot may restart (``inhabit render --resume``). None: frames
    # are independent, a job can start at any frame. Otherwise (frames, overlap)
    # of the windows or segments the engine generates, each an int or the name of
    # one of its params: an engine that carries frames from one window into the
    # next restarts at a window start (see protocol.restart_frame).
    restart_window: tuple | None = None

    def __init__(self, *, device: str = "cpu", weights: str | None = None):
        self.device = device
        self.weights = weights
        self.log = logs.get(f"engine.{self.name}")   # logs.event(self.log, "...", key=value)

    def load(self) -> None:
        """Load weights / warm up. Called once before the first job."""

    def validate(self, job: AdmittedJob) -> None:
        """Check job-level data before it is queued; raise EngineInputError."""

    def frames_to_start(self, job: AdmittedJob) -> int:
        """Frames a streaming job should have received before a worker takes
        it, so a worker is not held idle while the first ones are still being
        rendered; the server caps it at the input window and the shot length."""
        return self.input_window

    @abc.abstractmethod
    def run(self, ctx: JobContext) -> None:
        """Generate every frame of ``ctx.job`` and ``ctx.emit`` each one."""

    @classmethod
    def describe(cls) -> dict:
        """The INFO entry for this engine."""
        from blender_addon.core.protocol import COMMON_PARAMS
        return {
            "name": cls.name,
            "description": cls.description,
            "required_inputs": list(cls.required_inputs),
            "optional_inputs": list(cls.optional_inputs),
            "needs_reference": cls.needs_reference,
            "needs_reference_keypoints": bool(cls.needs_reference_keypoints),
            "params": [p.to_json() for p in (*COMMON_PARAMS, *cls.params)],
            "input_window": cls.input_window,
            "streaming": cls.streaming,
            "restart_window": (None if cls.restart_window is None else
                               {"frames": cls.restart_window[0], "overlap": cls.restart_window[1]}),
        }
