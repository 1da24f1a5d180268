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
from blender_addon.core.protocol import DEFAULT_LIMITS, ParamSpec
from models.errors import InputError

from .options import defaults


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
    implement ``run``; register with ``backend.server.engines.registry.register``.

    Everything the server reads of an engine is declared here, with its
    default: the class attributes (read before any instance exists, to
    describe the engine in INFO and check jobs and frames) and the hooks
    below. ``tests/test_engine_conformance.py`` checks every registered
    engine against this contract."""

    name: str = ""
    description: str = ""
    # Per-frame inputs, names from protocol.FRAME_INPUTS. The server checks every
    # frame against them, so ``run`` receives frames that hold every required one.
    required_inputs: Sequence[str] = ()
    optional_inputs: Sequence[str] = ()
    # Whether the job needs a reference image / reference keypoints
    # (float32 [18, 4], x and y in reference-image pixels). A job lacking one is
    # refused at SUBMIT with the field named.
    needs_reference: bool = True
    needs_reference_keypoints: bool = False
    reference_keypoints_hint: str = ""     # added to the missing_input sentence (e.g. an optional detector)
    # Job parameters besides the common ones (seed); sent in INFO, checked at SUBMIT.
    params: Sequence[ParamSpec] = ()
    # Server-side options (memory tier, dtype, ...): how this machine runs the
    # engine, set by `inhabit serve --engine-option NAME=VALUE`, checked at start
    # and given to each instance as ``self.options`` (see backend.server.engines.options).
    server_options: Sequence[ParamSpec] = ()
    # Frames the engine needs in memory at once; the server's input window
    # is at least this large. Streaming engines start before end_input.
    input_window: int = 8
    streaming: bool = True
    # Engines that cannot run without a weights folder; `inhabit serve`
    # refuses (or, for default engines, skips) them when --weights is absent,
    # and checks the folder with ``weights_problem`` before it listens.
    needs_weights: bool = False
    # Where a resumed shot may restart (``inhabit render --resume``). None: frames
    # are independent, a job can start at any frame. Otherwise (frames, overlap)
    # of the windows or segments the engine generates, each an int or the name of
    # one of its params: an engine that carries frames from one window into the
    # next restarts at a window start (see protocol.restart_frame): the frames
    # before it are kept as made, and a job started there generates what an
    # uninterrupted job from that frame generates.
    restart_window: tuple | None = None

    def __init__(self, *, device: str = "cpu", weights: str | None = None, options: Mapping | None = None,
                 limits: Mapping | None = None):
        self.device = device
        self.weights = weights
        # This server's values of ``server_options`` (defaults where not set).
        self.options = defaults(self.server_options, options)
        # This server's limits (max_width, max_height, ...): a param that sets a
        # size, such as a working resolution, stays within them.
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.log = logs.get(f"engine.{self.name}")   # logs.event(self.log, "...", key=value)

    # -- set-up ----------------------------------------------------------------------------------
    @classmethod
    def weights_report(cls, folder: str) -> tuple[bool, list[str]]:
        """(usable, report lines) for a weights folder; problem lines start with
        "ERROR". Engines with ``needs_weights`` override it; `inhabit doctor`
        prints the lines. Cheap (configs and file headers, no tensors)."""
        return True, []

    @classmethod
    def weights_problem(cls, folder: str) -> str | None:
        """One sentence when ``folder`` cannot serve this engine, else None.
        `inhabit serve` asks it of every engine before it listens, so a wrong
        folder is refused at start-up, not by a job's first load."""
        ok, lines = cls.weights_report(folder)
        if ok:
            return None
        first = next((line for line in lines if line.startswith("ERROR")), f"ERROR {folder}: not usable")
        return first[len("ERROR"):].strip()

    @classmethod
    def machine_report(cls, device: str, weights: str | None) -> list[str]:
        """Lines `inhabit doctor --engine NAME` prints about this machine for
        this engine (e.g. the memory tier it would choose); imports torch freely."""
        return []

    @classmethod
    def smoke_test(cls, device: str, *, frames: int, steps: int, save_to: str | None = None) -> str:
        """Run a tiny generation on ``device`` with random weights of the real
        classes; return one line with the seconds per frame. With ``save_to``,
        also write that tiny model as a folder `inhabit serve --weights` loads.
        Engines without a model return a line saying so."""
        if save_to:
            raise ValueError(f"engine {cls.name!r} has no model to save (--save-tiny is for engines with weights)")
        return f"engine {cls.name!r} has no model to smoke-test"

    def load(self) -> None:
        """Load weights / warm up. Called once per worker, on it, before its first job."""

    # -- per job ---------------------------------------------------------------------------------
    def validate(self, job: AdmittedJob) -> None:
        """Check job-level data before it is queued; raise EngineInputError
        naming the field. Runs on the server's socket thread on an unloaded
        instance: cheap checks only, no model."""

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
        """The INFO entry for this engine (the server adds ``options``, its values)."""
        from blender_addon.core.protocol import COMMON_PARAMS
        return {
            "name": cls.name,
            "description": cls.description,
            "required_inputs": list(cls.required_inputs),
            "optional_inputs": list(cls.optional_inputs),
            "needs_reference": cls.needs_reference,
            "needs_reference_keypoints": bool(cls.needs_reference_keypoints),
            "params": [p.to_json() for p in (*COMMON_PARAMS, *cls.params)],
            "server_options": [p.to_json() for p in cls.server_options],
            "input_window": cls.input_window,
            "streaming": cls.streaming,
            "restart_window": (None if cls.restart_window is None else
                               {"frames": cls.restart_window[0], "overlap": cls.restart_window[1]}),
        }
