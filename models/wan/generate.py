"""Wan-Animate's replace mode, one segment at a time.

``WanAnimatePipeline.__call__`` runs every segment of a shot in one call and
returns only at the end: memory grows with the shot, nothing can be streamed,
its interrupt flag still decodes every remaining segment, and its segment
count is wrong for small S - P. This module drives the same pipeline object
segment by segment with the pipeline's own building blocks
(``prepare_latents``, ``prepare_pose_latents``,
``prepare_prev_segment_cond_latents``, ``prepare_reference_image_latents``,
``encode_image``, the transformer, the scheduler, the VAE) in the same order
and with the same generator, so a shot that fits one segment gives the
pipeline's own frames (tests check it), and a long shot is generated with
flat memory, each segment handed back as soon as it is decoded.

Two deliberate differences for long shots: the frames carried into the next
segment are the *composited* ones (exact environment outside the mask, so
background errors do not accumulate through the VAE round trips), and
optionally the new segment's colours are matched to the carried frames
(``models.wan.seams``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .segments import Segment


@dataclass
class SegmentInputs:
    """Per-frame model inputs at the working resolution, uint8 numpy."""
    pose: list          # [H, W, 3]
    face: list          # [F, F, 3]
    background: list    # [H, W, 3] environment blacked out under the mask
    mask: list          # [H, W] 0/255, white = generate
    environment: list   # [H, W, 3] the exact environment (for the carried frames)


def reflect_indices(n: int, target: int) -> list[int]:
    """0..n-1 then back and forth, ``target`` long (the pipeline's pad_video_frames; safe for n=1)."""
    if n == 1:
        return [0] * target
    period = 2 * (n - 1)
    return [i % period if i % period < n else period - i % period for i in range(target)]


def to_uint8(video) -> np.ndarray:
    """[1, 3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3]."""
    x = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return x.permute(1, 2, 3, 0).cpu().numpy()


class ShotGenerator:
    def __init__(self, pipe, *, height: int, width: int, steps: int, guidance: float, seed: int,
                 prompt_embeds, negative_embeds=None, carried: int = 5, color_match: bool = True,
                 clip_squash: bool = True, sampling=None):
        """``sampling``: a ``models.wan.presets.Sampling`` (scheduler, timesteps, steps, guidance);
        None = the pipeline's own scheduler with ``steps`` and ``guidance``."""
        import torch

        from .presets import Sampling
        self.pipe, self.height, self.width = pipe, height, width
        self.sampling = sampling or Sampling(pipe.scheduler, steps, guidance)
        steps, guidance = self.sampling.steps, self.sampling.guidance
        self.steps, self.guidance, self.carried = steps, guidance, carried
        self.color_match = color_match
        self.clip_squash = clip_squash
        self.device = pipe._execution_device
        self.tdtype = pipe.transformer.dtype
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))
        self.prompt_embeds = prompt_embeds.to(self.device, self.tdtype)
        self.negative_embeds = None
        if guidance > 1.0:
            neg = negative_embeds if negative_embeds is not None else torch.zeros_like(prompt_embeds)
            self.negative_embeds = neg.to(self.device, self.tdtype)
        self.carry: torch.Tensor | None = None   # [1, 3, P, H, W] in [-1, 1]
        self.last_latents = None   # the last segment's final latents, before decoding
        self.ref_latents = None
        self.image_embeds = None

    def set_reference(self, reference_rgb: np.ndarray) -> None:
        """The letterboxed reference, uint8 [H, W, 3] (as the pipeline: VAE latents + CLIP features).

        ``clip_squash``: CLIP sees the whole letterboxed frame squashed to its square input, as in Wan's
        own code (``wan/modules/animate/clip.py``), instead of the processor's centre crop, which cuts
        the sides off a wide frame."""
        import torch
        from PIL import Image
        pipe = self.pipe
        pil = Image.fromarray(np.ascontiguousarray(reference_rgb))
        clip_in = pil
        if self.clip_squash:
            crop = getattr(pipe.image_processor, "crop_size", None)
            side = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
            clip_in = pil.resize((int(side or 224),) * 2, Image.Resampling.BICUBIC)
        with torch.no_grad():
            pixels = pipe.vae_image_processor.preprocess(pil, height=self.height, width=self.width,
                                                         resize_mode="fill").to(self.device, dtype=torch.float32)
            self.image_embeds = pipe.encode_image(clip_in, self.device).to(self.tdtype)
            self.ref_latents = pipe.prepare_reference_image_latents(pixels, 1, generator=self.generator,
                                                                    device=self.device)

    def _video(self, frames: list, idx: list, *, size=None, mask=False):
        from PIL import Image
        h, w = size or (self.height, self.width)
        proc = self.pipe.video_processor_for_mask if mask else self.pipe.video_processor
        pils = [Image.fromarray(np.ascontiguousarray(frames[i])) for i in idx]
        return proc.preprocess_video(pils, height=h, width=w).to(self.device, dtype=self.pipe.vae.dtype)

    def segment(self, seg: Segment, inputs: SegmentInputs, on_step=None) -> np.ndarray:
        """Generate one segment; returns its new frames, uint8 [len(seg.new_frames), H, W, 3]."""
        import torch
        with torch.no_grad():
            out = self._segment(seg, inputs, on_step)
        return out

    def _segment(self, seg, inputs, on_step):
        import torch
        pipe = self.pipe
        n = seg.end - seg.start
        idx = reflect_indices(n, seg.length)
        face_size = pipe.transformer.config.motion_encoder_size
        pose = self._video(inputs.pose, idx)
        face = self._video(inputs.face, idx, size=(face_size, face_size)).to(self.tdtype)
        background = self._video(inputs.background, idx)
        mask = self._video(inputs.mask, idx, mask=True)

        latents = pipe.prepare_latents(1, num_channels_latents=pipe.vae.config.z_dim, height=self.height,
                                       width=self.width, num_frames=seg.length, dtype=torch.float32,
                                       device=self.device, generator=self.generator)
        pose_latents = pipe.prepare_pose_latents(pose, 1, generator=self.generator,
                                                 device=self.device).to(self.tdtype)
        carry = self.carry if seg.carried else None
        carried = seg.carried if carry is not None else 0
        cond = pipe.prepare_prev_segment_cond_latents(
            carry[:, :, -carried:] if carry is not None else None, background_video=background, mask_video=mask,
            batch_size=1, segment_frame_length=seg.length, start_frame=seg.start if carried else 0,
            height=self.height, width=self.width, prev_segment_cond_frames=max(carried, 1), task="replace",
            generator=self.generator, device=self.device)
        assert self.ref_latents is not None, "set_reference comes before any segment"
        reference = torch.cat([self.ref_latents, cond], dim=2)

        scheduler = self.sampling.scheduler
        timesteps = self.sampling.start(self.device)
        if getattr(pipe.transformer, "is_cache_enabled", False):
            # Each segment is a new denoising run: a cache must not carry residuals across.
            pipe.transformer._reset_stateful_cache()
        for i, t in enumerate(timesteps):
            model_in = torch.cat([latents, reference], dim=1).to(self.tdtype)
            timestep = t.expand(latents.shape[0])
            kwargs = dict(hidden_states=model_in, timestep=timestep, encoder_hidden_states_image=self.image_embeds,
                          pose_hidden_states=pose_latents, return_dict=False)
            with pipe.transformer.cache_context("cond"):
                noise = pipe.transformer(encoder_hidden_states=self.prompt_embeds, face_pixel_values=face,
                                         **kwargs)[0]
            if self.negative_embeds is not None:
                # The pipeline's unconditional pass: negative prompt and a black (-1) face.
                with pipe.transformer.cache_context("uncond"):
                    uncond = pipe.transformer(encoder_hidden_states=self.negative_embeds,
                                              face_pixel_values=face * 0 - 1, **kwargs)[0]
                noise = uncond + self.guidance * (noise - uncond)
            # fp32 into the step: Euler returns the model output's dtype, and bf16 latents would round each step.
            latents = scheduler.step(noise.to(latents.dtype), t, latents, return_dict=False)[0]
            if on_step is not None:
                on_step(i + 1, len(timesteps))   # may raise to cancel within one step

        self.last_latents = latents          # kept for the speed benchmark's comparison of recipes
        video = self._decode(latents)
        if carry is not None and self.color_match:
            from .seams import match_to_carried
            video = match_to_carried(video, carry[:, :, -carried:], mask[:, :, :carried])
        # Carry the composited frames: generated inside the mask, the exact environment outside.
        env = self._video(inputs.environment, idx)
        inside = (mask > 0.5).to(video.dtype)
        composited = video * inside + env * (1 - inside)
        keep = self.carried
        self.carry = composited[:, :, n - keep:n].clone() if n >= keep else composited[:, :, :n].clone()
        return to_uint8(video[:, :, seg.carried:n] if carried else video[:, :, :n])

    def carry_environment(self, inputs: SegmentInputs, n: int) -> None:
        """A segment with no character anywhere was not generated: carry its environment."""
        env = self._video(inputs.environment, list(range(n)))
        self.carry = env[:, :, max(0, n - self.carried):n].clone()

    def _decode(self, latents):
        import torch
        vae = self.pipe.vae
        latents = latents.to(vae.dtype)
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
        std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
        latents = latents * std + mean
        return vae.decode(latents[:, :, 1:], return_dict=False)[0]    # the first latent frame is the reference

    def finish(self) -> None:
        self.pipe.maybe_free_model_hooks()
