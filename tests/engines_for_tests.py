"""Small engines the tests register with ``inhabit serve --engine tests.engines_for_tests:EchoEngine``.

They exercise the whole server path (flow control, progress, cancel,
failures) without any model: EchoEngine returns the environment tinted where
the character mask is, so a test can check that what comes back is what it
sent.
"""
from __future__ import annotations

import time

import numpy as np

from backend.server.engines.base import Engine, EngineInputError
from blender_addon.core.protocol import ParamSpec

TINT = np.array([255, 0, 255], np.float32)  # magenta: unmistakable in a test image
TINTS = {"magenta": TINT, "green": np.array([0, 255, 0], np.float32)}


class EchoEngine(Engine):
    name = "echo"
    description = "test engine: environment tinted where the character mask is; matte = mask"
    required_inputs = ("environment", "character_mask")
    optional_inputs = ("character_depth", "scene_depth", "keypoints", "object_labels")
    needs_reference = True
    params = (
        ParamSpec("delay", "float", 0.0, 0.0, 30.0, doc="seconds to sleep per frame (in 10 ms steps)"),
        ParamSpec("fail_at", "int", -1, -1, 100000, doc="raise RuntimeError at this frame (-1: never)"),
    )
    # A server-side option, as a memory tier is for a real engine: set by
    # `inhabit serve --engine-option tint=green`, read as self.options["tint"].
    server_options = (ParamSpec("tint", "choice", "magenta", choices=tuple(TINTS), doc="colour of the tint"),)
    input_window = 4
    streaming = True

    def validate(self, job) -> None:
        if job.reference is None:
            raise EngineInputError("echo needs a reference image", field="submit.reference")

    def run(self, ctx) -> None:
        job = ctx.job
        delay = float(job.params["delay"])
        for i in range(job.frames):
            ctx.check_cancelled()
            inputs = ctx.frame(i)
            if i == job.params["fail_at"]:
                raise RuntimeError(f"echo was asked to fail at frame {i}")
            # Sleep in small slices so cancel lands within one "step".
            end = time.monotonic() + delay
            while time.monotonic() < end:
                ctx.check_cancelled()
                time.sleep(min(0.01, max(0.0, end - time.monotonic())))
            env = inputs["environment"].astype(np.float32)
            mask = inputs["character_mask"]
            alpha = (mask.astype(np.float32) / 255.0)[..., None]
            rgb = env * (1 - 0.5 * alpha) + TINTS[self.options["tint"]] * 0.5 * alpha
            rgba = np.empty((job.height, job.width, 4), np.uint8)
            rgba[..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
            rgba[..., 3] = 255
            ctx.emit(i, rgba, np.array(mask, np.uint8))
            ctx.release(i + 1)
            ctx.progress("generating", (i + 1) / job.frames, frame=i, step=1, steps=1)


class BatchEchoEngine(EchoEngine):
    """Non-streaming variant: starts only after END_INPUT (tests the other scheduling path)."""
    name = "batch_echo"
    streaming = False


class HoardEngine(EchoEngine):
    """Reads and releases every input before emitting anything, as an engine
    that needs a whole context window does. With a window of 8 and 10 frames the
    last credit grows by less than half a window, so the client hears of it only
    because the server flushes credit when the engine waits for a frame."""
    name = "hoard"
    input_window = 8

    def run(self, ctx) -> None:
        job = ctx.job
        masks = []
        for i in range(job.frames):
            masks.append(np.array(ctx.frame(i)["character_mask"]))
            ctx.release(i + 1)
        for i, mask in enumerate(masks):
            rgba = np.zeros((job.height, job.width, 4), np.uint8)
            rgba[..., 3] = 255
            ctx.emit(i, rgba, mask)


class ExclusiveEngine(EchoEngine):
    """Fails a job that runs on an instance another job is already using: with
    --workers 2 the server must give each worker its own instances (engines keep
    per-run state, such as a diffusion scheduler's timesteps)."""
    name = "exclusive"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.busy = False

    def run(self, ctx) -> None:
        if self.busy:
            raise RuntimeError("two jobs ran on one engine instance at once")
        self.busy = True
        try:
            super().run(ctx)
        finally:
            self.busy = False


class WindowEchoEngine(EchoEngine):
    """Echo that declares overlapping windows, as a video model that carries
    frames from one window into the next does: a resumed shot must restart at
    a window start (``restart_window`` names the params)."""
    name = "window_echo"
    params = (*EchoEngine.params,
              ParamSpec("window", "int", 4, 1, 64, doc="frames per window"),
              ParamSpec("overlap", "int", 1, 0, 63, doc="frames carried into the next window"))
    restart_window = ("window", "overlap")

    def validate(self, job) -> None:
        super().validate(job)
        if job.params["overlap"] >= job.params["window"]:   # a job-level check only the engine knows
            raise EngineInputError(f"params.overlap ({job.params['overlap']}) must be smaller than params.window "
                                   f"({job.params['window']})", field="params.overlap")


class BuggyEngine(EchoEngine):
    """Echo whose submit check has a bug when ``fail_at`` is 0: it raises a plain
    KeyError where EngineInputError belongs. The server must answer that one
    SUBMIT ``internal_error``, log it, and go on serving."""
    name = "buggy"

    def validate(self, job) -> None:
        if job.params["fail_at"] == 0:
            raise KeyError("a bug in the engine's own check")
        super().validate(job)
