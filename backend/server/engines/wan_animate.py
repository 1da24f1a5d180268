"""The ``wan-animate`` engine: Wan2.2-Animate-14B replacement mode, fed exactly by Blender.

Every model input comes from the scene, no estimator: the background is the
environment render blacked out under the grid-snapped generation mask, the
mask is the exact matte dilated and coarsened as Wan's preprocessing does,
the pose video is the projected skeleton drawn to Wan's own spec, the face is
Wan's null face (or the reference's face while the head is in view), the
reference is letterboxed to the frame. Segments are generated one at a time
(``models.wan.generate``) and streamed back as each is decoded, composited
over the exact environment with the project's depth-tested composite.

torch/diffusers are imported in ``load``/``run`` only.
"""
from __future__ import annotations

import os
import re

import numpy as np

from blender_addon.core.protocol import ParamSpec
from models.wan.memory import CHOICES as MEMORY_CHOICES

from .base import Engine, EngineInputError, JobContext, AdmittedJob

MAX_SEGMENT = 81
# Expected seconds per output frame, 20 steps, no CFG (projections and one
# measurement; shared/spec/wan-animate.md section 4).
EXPECTED_S_PER_FRAME = {"H100 832x480": 1.1, "H100 1280x720": 3.5, "A100/A800 832x480": 2.8,
                        "A100 1280x720": 9.0, "CPU tiny config 64x64": 0.2}


def parse_resolution(value: str, shot_h: int, shot_w: int, max_w: int = 2048, max_h: int = 2048) -> tuple[int, int]:
    """(height, width) of the working resolution; EngineInputError unless both are
    /16 and within the server's max_width x max_height."""
    v = (value or "shot").strip().lower()
    if v == "shot":
        h, w = shot_h, shot_w
        if h % 16 or w % 16:
            raise EngineInputError(
                f"the shot is {shot_w}x{shot_h} but Wan-Animate needs both sides divisible by 16: set "
                f"params.resolution to a /16 size such as {max(16, shot_w // 16 * 16)}x{max(16, shot_h // 16 * 16)} "
                "(the result is resized back to the shot) or render at a /16 size", field="params.resolution")
        return h, w
    m = re.fullmatch(r"(\d{1,6})\s*x\s*(\d{1,6})", v)
    if not m:
        raise EngineInputError(f"params.resolution must be 'shot' or WIDTHxHEIGHT (e.g. 832x480), got {value!r}",
                               field="params.resolution")
    w, h = int(m.group(1)), int(m.group(2))
    if w % 16 or h % 16 or w < 16 or h < 16:
        fix = f"{max(16, round(w / 16) * 16)}x{max(16, round(h / 16) * 16)}"
        raise EngineInputError(f"params.resolution {w}x{h} is not divisible by 16: use e.g. {fix}",
                               field="params.resolution")
    if w > max_w or h > max_h:
        raise EngineInputError(f"params.resolution {w}x{h} is over this server's limit of {max_w}x{max_h}: use a "
                               "smaller working size such as 1280x720", field="params.resolution")
    return h, w


class WanAnimateEngine(Engine):
    name = "wan-animate"
    needs_weights = True
    description = ("Wan2.2-Animate-14B replacement mode (diffusers WanAnimatePipeline): the reference character "
                   "generated into the scene, fed exactly by Blender (needs --weights DIR; GPU, 16-141 GB)")
    required_inputs = ("environment", "character_mask", "keypoints")
    # Hands and toes are drawn into the pose video when the rig has finger and toe
    # bones; the face box says when the head faces the camera.
    optional_inputs = ("character_depth", "scene_depth", "hand_keypoints", "toe_keypoints", "face_box")
    needs_reference = True
    params = (
        ParamSpec("steps", "int", 20, 1, 100, doc="denoising steps (UniPC; Wan uses 20)"),
        ParamSpec("guidance", "float", 1.0, 0.0, 20.0,
                  doc="classifier-free guidance; 1 = off (Wan's default), >1 doubles the work"),
        ParamSpec("segment_length", "int", 77, 1, MAX_SEGMENT,
                  doc="frames per segment, 4k+1 (77 trained); short shots use the smallest 4k+1 >= their length"),
        ParamSpec("carried_frames", "int", 5, 1, 5, doc="frames carried from one segment into the next: 1 or 5"),
        ParamSpec("resolution", "str", "shot",
                  doc="working resolution WIDTHxHEIGHT, both /16 (832x480, 1280x720, ...), or 'shot'; "
                      "the result is resized back to the shot"),
        ParamSpec("prompt", "str", "", doc="text prompt; empty = Wan's own fixed prompt (embedded once, cached)"),
        ParamSpec("face", "choice", "null", choices=("null", "reference"),
                  doc="face video: Wan's null face (black), or the reference's face while the head is in view"),
        ParamSpec("mask_block", "int", 0, 0, 256,
                  doc="block size of the coarsened mask, px; 0 = the character's bounding box (Wan's default)"),
        # Off by default: on bench/wan_animate.py's seam measurement it made the boundary jump larger
        # (bench/RESULTS.md); 5 carried frames is what reduced it.
        ParamSpec("color_match", "bool", False, doc="match each new segment's colours to the frames it carries"),
        ParamSpec("feather", "float", 1.5, 0.0, 20.0, doc="inward edge softening of the composite, px"),
        ParamSpec("lora", "str", "", doc="file name of a LoRA .safetensors in the server's LoRA folder (e.g. Wan's "
                                         "relighting LoRA; the server names the folder); empty = none"),
        ParamSpec("lora_strength", "float", 1.0, 0.0, 2.0, doc="LoRA scale"),
    )
    server_options = (
        ParamSpec("memory", "choice", "auto", choices=MEMORY_CHOICES,
                  doc="memory tier (models/wan/memory.py); auto = chosen from free VRAM when the engine loads"),
        ParamSpec("fp8", "bool", False,
                  doc="store the transformer's weights in fp8 (e4m3), compute in bf16: half the bytes on any tier"),
        ParamSpec("lora_dir", "str", "", doc="the folder whose .safetensors files jobs may name as params.lora; "
                                             "empty = jobs take no LoRA"),
        ParamSpec("prompt_cache", "str", "", doc="folder of cached prompt embeddings; empty = the user cache "
                                                 "(~/.cache/inhabit/prompts)"),
        ParamSpec("prompt_cache_mb", "int", 1024, 1, 1 << 20,
                  doc="size cap of the prompt cache; the least recently used embeddings go first"),
    )
    input_window = MAX_SEGMENT
    # Segments carry their last frames into the next: a resumed shot restarts at a segment start.
    restart_window = ("segment_length", "carried_frames")
    streaming = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pipe = None
        self.tier = None
        self.tier_reason = ""
        self._lora: dict = {}

    @classmethod
    def describe(cls) -> dict:
        d = super().describe()
        d["memory_tiers"] = list(MEMORY_CHOICES)
        d["expected_s_per_frame"] = dict(EXPECTED_S_PER_FRAME)
        return d

    @classmethod
    def weights_report(cls, folder: str) -> tuple[bool, list[str]]:
        from models.wan.weights_check import check_wan_folder
        ok, lines, _ = check_wan_folder(folder)
        return ok, lines

    @classmethod
    def machine_report(cls, device: str, weights: str | None) -> list[str]:
        from .wan_animate_doctor import machine_report
        return machine_report(device, weights)

    @classmethod
    def smoke_test(cls, device: str, *, frames: int, steps: int, save_to: str | None = None) -> str:
        from .wan_animate_doctor import smoke_test
        return smoke_test(device, frames=frames, steps=steps, save_to=save_to)

    def load(self) -> None:
        if not self.weights:
            raise RuntimeError("the wan-animate engine needs a weights folder: inhabit serve --engine wan-animate "
                               "--weights DIR (a tiny test one: inhabit doctor --engine wan-animate --save-tiny DIR)")
        from models.wan.loading import load_pipeline
        self.pipe, self.tier, self.tier_reason = load_pipeline(
            self.weights, device=self.device, memory=self.options["memory"], fp8=self.options["fp8"])

    # -- job checks, before anything is queued ---------------------------------------------------
    def validate(self, job: AdmittedJob) -> None:
        from models.wan.segments import is_valid_length
        if job.reference is None:
            raise EngineInputError("the wan-animate engine needs a reference image of the character",
                                   field="submit.reference")
        p = job.params
        parse_resolution(p["resolution"], job.height, job.width, self.limits["max_width"], self.limits["max_height"])
        if not is_valid_length(p["segment_length"]):
            s = p["segment_length"]
            raise EngineInputError(f"params.segment_length must be 4k+1 (5, 9, ..., 77), got {s}: use "
                                   f"{(s - 1) // 4 * 4 + 1 if s > 1 else 1}", field="params.segment_length")
        if p["carried_frames"] not in (1, 5):
            raise EngineInputError(f"params.carried_frames must be 1 or 5, got {p['carried_frames']}",
                                   field="params.carried_frames")
        if p["segment_length"] <= p["carried_frames"] and job.frames > p["segment_length"]:
            raise EngineInputError(f"params.segment_length ({p['segment_length']}) must be larger than "
                                   f"params.carried_frames ({p['carried_frames']})", field="params.segment_length")
        if p["lora"]:
            self._lora_path(p["lora"])
        self._check_prompt(p["prompt"], p["guidance"])
        if p["face"] == "reference" and self._reference_face_box(job) is None:
            raise EngineInputError("params.face 'reference' needs reference_keypoints with the reference's head "
                                   "(nose, eyes or ears) visible, or use face 'null'",
                                   field="submit.reference_keypoints")

    def _prompt_cache(self, weights: str):
        from models.wan.prompts import PromptCache
        return PromptCache(weights, self.options["prompt_cache"] or None,
                           cap_bytes=self.options["prompt_cache_mb"] << 20)

    def _check_prompt(self, prompt: str, guidance: float) -> None:
        """A prompt that is not cached needs the text encoder: refused at SUBMIT when
        the weights folder has none, not after the job waited for a worker."""
        weights = self.weights
        if not weights or os.path.isdir(os.path.join(weights, "text_encoder")):
            return
        from models.wan.prompts import DEFAULT_PROMPT, MAX_SEQUENCE_LENGTH, cache_key
        cache = self._prompt_cache(weights)
        for text in (prompt or DEFAULT_PROMPT, *([""] if guidance > 1.0 else [])):
            if cache.find(cache_key(weights, text, MAX_SEQUENCE_LENGTH) + ".safetensors") is None:
                raise EngineInputError("params.prompt is not cached on this server and its weights folder has no "
                                       "text_encoder/ to embed it: use a prompt embedded before (empty = Wan's own), "
                                       "or restore text_encoder/", field="params.prompt")

    def _lora_path(self, name: str) -> str:
        """The path of LoRA ``name`` in the server's LoRA folder. A job names a file
        the server offers, never a path: it learns nothing of the rest of the disk."""
        folder = self.options["lora_dir"]
        if not folder:
            raise EngineInputError("params.lora: this server offers no LoRA (its operator can name a folder with "
                                   "--engine-option lora_dir=DIR); leave params.lora empty", field="params.lora")
        offered = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")) if os.path.isdir(folder) else []
        if name not in offered:
            shown = ", ".join(offered[:10]) or "none"
            raise EngineInputError(f"params.lora must be the file name of one of this server's LoRAs ({shown}), "
                                   f"got {name[:80]!r}", field="params.lora")
        return os.path.join(folder, name)

    def frames_to_start(self, job: AdmittedJob) -> int:
        return min(job.frames, job.params["segment_length"])

    @staticmethod
    def _reference_face_box(job: AdmittedJob):
        from models.wan.inputs import face_box
        if job.reference_keypoints is None or job.reference is None:
            return None
        h, w = job.reference.shape[:2]
        return face_box(job.reference_keypoints, h, w)

    # -- the job -------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        from models.wan import inputs as I
        from models.wan.generate import SegmentInputs, ShotGenerator
        from models.wan.lora import LoraMismatch, apply_lora
        from models.wan.prompts import DEFAULT_PROMPT, prompt_embeddings
        from models.wan.segments import plan_segments

        job, p = ctx.job, ctx.job.params
        height, width = parse_resolution(p["resolution"], job.height, job.width, self.limits["max_width"],
                                         self.limits["max_height"])
        plan = plan_segments(job.frames, p["segment_length"], p["carried_frames"])
        steps = p["steps"]
        total = steps * len(plan)
        pipe, weights, ref = self.pipe, self.weights, job.reference
        if pipe is None or weights is None or ref is None:  # by contract load() and validate() ran first
            raise RuntimeError("the wan-animate engine ran before load(), or without a reference")
        face_size = pipe.transformer.config.motion_encoder_size

        try:
            apply_lora(pipe, self._lora_path(p["lora"]) if p["lora"] else None, p["lora_strength"], loaded=self._lora)
        except LoraMismatch as exc:
            raise EngineInputError(str(exc), field="params.lora") from None
        ctx.check_cancelled()
        ctx.progress("loading", 0.0)   # a prompt not cached yet loads the text encoder once
        try:
            cache = self._prompt_cache(weights)
            embeds = prompt_embeddings(weights, p["prompt"] or DEFAULT_PROMPT, device=self.device, cache=cache)
            negative = (prompt_embeddings(weights, "", device=self.device, cache=cache)
                        if p["guidance"] > 1.0 else None)
        except FileNotFoundError as exc:
            raise EngineInputError(f"params.prompt: {exc}", field="params.prompt") from None
        gen = ShotGenerator(pipe, height=height, width=width, steps=steps, guidance=p["guidance"], seed=p["seed"],
                            prompt_embeds=embeds, negative_embeds=negative, carried=p["carried_frames"],
                            color_match=p["color_match"])
        reference = I.letterbox(ref, height, width)
        gen.set_reference(reference)
        ref_face = self._reference_face(job, reference, height, width, face_size) if p["face"] == "reference" else None

        prepared: dict[int, dict] = {}
        try:
            for seg in plan:
                for i in range(seg.start, seg.end):
                    if i not in prepared:
                        prepared[i] = self._prepare(i, ctx.frame(i), height, width, face_size, ref_face, p)
                frames = [prepared[i] for i in range(seg.start, seg.end)]
                seg_inputs = SegmentInputs(*([f[k] for f in frames] for k in
                                             ("pose", "face", "background", "mask", "env_w")))
                new = list(seg.new_frames)
                if not any(f["mask"].any() for f in frames):
                    gen.carry_environment(seg_inputs, len(frames))   # nobody in view: nothing to generate
                    generated = [None] * len(new)
                    ctx.progress("generating", (seg.index + 1) * steps / total, frame=seg.start, step=steps,
                                 steps=steps)
                else:
                    def on_step(step, n, seg=seg):
                        ctx.check_cancelled()
                        ctx.progress("generating", (seg.index * steps + step) / total, frame=seg.start,
                                     step=step, steps=n)
                    generated = list(gen.segment(seg, seg_inputs, on_step=on_step))
                for i, img in zip(new, generated):
                    rgba, matte = self._composite(prepared[i], img, job.height, job.width, p["feather"])
                    ctx.emit(i, rgba, matte)
                keep_from = seg.end - p["carried_frames"] if seg.end < job.frames else seg.end
                for i in [k for k in prepared if k < keep_from]:
                    del prepared[i]
                ctx.release(keep_from)
        finally:
            gen.finish()

    def _prepare(self, i: int, inputs, height: int, width: int, face_size: int, ref_face, p) -> dict:
        import cv2

        from models.wan import inputs as I
        from models.wan.pose import draw_pose, scale_keypoints
        # The server checked the frame against FRAME_INPUTS and required_inputs (backend/server/admission.py).
        env = np.asarray(inputs["environment"])
        matte = np.asarray(inputs["character_mask"])
        sh, sw = env.shape[:2]
        same = (sh, sw) == (height, width)
        env_w = env if same else cv2.resize(env, (width, height), interpolation=cv2.INTER_AREA)
        matte_w = matte if same else cv2.resize(matte, (width, height), interpolation=cv2.INTER_NEAREST)
        def working(name):
            pts = inputs.get(name)
            if pts is None:
                return None
            pts = np.asarray(pts, np.float32)
            return pts if same else scale_keypoints(pts, height / sh, width / sw)

        kps_w = working("keypoints")
        mask_w = I.generation_mask(matte_w, block=p["mask_block"])
        region = mask_w if same else cv2.resize(mask_w, (sw, sh), interpolation=cv2.INTER_NEAREST)
        box = inputs.get("face_box")
        if box is not None:  # from the rig's head: 1 = facing the camera and not hidden
            visible_head = float(np.asarray(box)[4]) >= 1.0
        else:
            visible_head = I.face_box(kps_w, height, width) is not None
        face = ref_face if (ref_face is not None and visible_head) else np.zeros((face_size, face_size, 3), np.uint8)
        pose = (draw_pose(kps_w, height, width, hands=working("hand_keypoints"), toes=working("toe_keypoints"))
                if mask_w.any() else np.zeros((height, width, 3), np.uint8))
        return dict(pose=pose, face=face, background=I.black_out(env_w, mask_w), mask=mask_w, env_w=env_w,
                    env=env, region=region, cdepth=inputs.get("character_depth"), sdepth=inputs.get("scene_depth"))

    @staticmethod
    def _reference_face(job, reference, height, width, face_size):
        from models.wan import inputs as I
        box = WanAnimateEngine._reference_face_box(job)
        h, w = job.reference.shape[:2]
        scale = min(height / h, width / w)
        ox, oy = (width - round(w * scale)) // 2, (height - round(h * scale)) // 2
        x1, x2, y1, y2 = box
        lb = (int(x1 * scale) + ox, int(x2 * scale) + ox, int(y1 * scale) + oy, int(y2 * scale) + oy)
        return I.crop_face(reference, lb, face_size)

    @staticmethod
    def _composite(f: dict, generated, height: int, width: int, feather: float):
        import cv2

        from models.aa2.conditioning import composite_character
        env = f["env"]
        if generated is None or not f["region"].any():
            # No character in view: the frame is the environment itself.
            rgba = np.empty((height, width, 4), np.uint8)
            rgba[..., :3] = env
            rgba[..., 3] = 255
            return rgba, np.zeros((height, width), np.uint8)
        if generated.shape[:2] != (height, width):
            generated = cv2.resize(generated, (width, height), interpolation=cv2.INTER_CUBIC)
        region = f["region"]
        return composite_character(env, np.ascontiguousarray(generated), (region > 0).astype(np.float32),
                                   character_depth=f["cdepth"], scene_depth=f["sdepth"], feather_px=feather,
                                   match_brightness=False, region=region)
