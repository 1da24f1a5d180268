"""The ``aa2`` engine: Animate Anyone 2 diffusion on the server's device.

Frames are pulled from the job as each context window needs them, results are
emitted as soon as a window is finished, consumed inputs are released, and
every denoising step reports progress and checks for cancellation -- so a
long shot streams back with flat memory and stops within one step.

torch/diffusers are imported in ``load``/``run`` only (``inhabit serve`` starts
fast; INFO is cheap).
"""
from __future__ import annotations

from blender_addon.core.protocol import ParamSpec

from .base import Engine, EngineInputError, JobContext, AdmittedJob

MAX_CONTEXT = 32   # the motion modules' positional table (AnimateDiff: 32 frames)


class AA2Engine(Engine):
    name = "aa2"
    needs_weights = True
    description = ("Animate Anyone 2: reference character generated into the scene by a video "
                   "diffusion model (needs --weights DIR; GPU recommended)")
    required_inputs = ("environment", "character_mask", "keypoints")
    optional_inputs = ("character_depth", "scene_depth", "object_labels")
    needs_reference = True
    params = (
        ParamSpec("steps", "int", 25, 1, 200, doc="denoising steps (DDIM)"),
        ParamSpec("guidance", "float", 3.5, 0.0, 20.0, doc="classifier-free guidance scale (<= 1 turns it off)"),
        ParamSpec("context_frames", "int", 16, 1, MAX_CONTEXT, doc="frames generated together in one window"),
        ParamSpec("overlap", "int", 4, 0, MAX_CONTEXT - 1,
                  doc="frames shared by consecutive windows (carried over and cross-faded)"),
        ParamSpec("mask_block", "int", 10, 1, 256, doc="block size of the shape-agnostic mask, px"),
    )
    server_options = (
        ParamSpec("dtype", "choice", "auto", choices=("auto", "float32", "float16", "bfloat16"),
                  doc="weights and compute precision; auto = float16 on CUDA, float32 on the CPU"),
    )
    # A window needs all its frames at once; the largest window is MAX_CONTEXT.
    input_window = MAX_CONTEXT
    streaming = True
    # Windows overlap and are cross-faded: a resumed shot restarts at a window start.
    restart_window = ("context_frames", "overlap")

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pipeline = None

    @classmethod
    def weights_report(cls, folder: str) -> tuple[bool, list[str]]:
        from models.aa2.weights_check import check_folder
        return check_folder(folder)

    @classmethod
    def smoke_test(cls, device: str, *, frames: int, steps: int, save_to: str | None = None) -> str:
        import time

        from models.aa2.tiny import tiny_inputs, tiny_pipeline
        pipe = tiny_pipeline(device=device)
        pipe.set_progress_bar_config(disable=True)
        inputs = tiny_inputs(max(1, frames), 64, 64)
        ref = inputs.pop("reference")
        t0 = time.perf_counter()
        out = pipe(ref, **inputs, steps=max(1, steps), guidance=2.0, context_frames=min(16, frames), overlap=0)
        n = out.frames.shape[0]
        line = (f"smoke generation ({device}, tiny config, {n} frames 64x64, {steps} steps): "
                f"{(time.perf_counter() - t0) / n:.3f} s/frame")
        if save_to:
            pipe.save_pretrained(save_to, safe_serialization=True)
        return line

    def load(self) -> None:
        if not self.weights:
            # A server set-up problem, not a job-input one: fails the job as engine_failed.
            raise RuntimeError("the aa2 engine needs a weights folder: inhabit serve --engine aa2 "
                               "--weights DIR (a tiny test one: inhabit doctor --save-tiny DIR)")
        from models.aa2.pipeline import load_pipeline
        self.pipeline = load_pipeline(self.weights, device=self.device,
                                      dtype=None if self.options["dtype"] == "auto" else self.options["dtype"])

    def validate(self, job: AdmittedJob) -> None:
        if job.reference is None:
            raise EngineInputError("the aa2 engine needs a reference image of the character", field="submit.reference")
        p = job.params
        if p["overlap"] >= p["context_frames"]:
            raise EngineInputError(f"params.overlap ({p['overlap']}) must be smaller than "
                                   f"params.context_frames ({p['context_frames']})", field="params.overlap")

    def frames_to_start(self, job: AdmittedJob) -> int:
        return job.params["context_frames"]  # the first window: generation can begin

    def run(self, ctx: JobContext) -> None:
        from models.aa2.pipeline import plan_windows

        job = ctx.job
        p = job.params
        steps = p["steps"]
        windows = len(plan_windows(job.frames, p["context_frames"], p["overlap"]))
        total = steps * windows

        def on_step(info):
            ctx.check_cancelled()
            done = info["window"] * steps + info["step"]
            ctx.progress("generating", done / total, frame=info["start"], step=info["step"], steps=steps)

        # Frames arrive checked by the server against required_inputs and take the
        # protocol's names, which are the pipeline's; its own InputError carries the field.
        pipeline = self.pipeline
        if pipeline is None:   # by contract load() ran first
            raise RuntimeError("the aa2 engine ran before load()")
        for index, rgba, matte in pipeline.stream(
                job.reference, ctx.frame, job.frames, height=job.height, width=job.width,
                steps=steps, guidance=p["guidance"], seed=p["seed"], context_frames=p["context_frames"],
                overlap=p["overlap"], mask_block=p["mask_block"], on_step=on_step, on_release=ctx.release):
            ctx.emit(index, rgba, matte)
