"""AnimateAnyone2Pipeline: reference + driving shot -> composited frames.

Flow per shot:
1. The reference image is VAE-encoded and CLIP-embedded once; the ReferenceNet
   runs once on its latent and its self-attention inputs are banked.
2. The shot is processed in overlapping context windows (at most
   ``context_frames`` frames). The first ``overlap`` frames of each window
   after the first are carried over from the previous window: at every step
   their latents are replaced by the previous result re-noised to that step
   (temporal inpainting, so the motion modules continue the earlier frames),
   and at the end the two results are cross-faded with a linear ramp. Only
   those overlap latents cross a window boundary, so memory stays flat and
   time grows linearly with the shot length.
3. Per window: the environment (shape-agnostic mask region blanked) is VAE-
   encoded, the mask downsampled to latent size; the input is
   ``[z_t | z_env | mask]``. Skeleton maps go through the pose guider,
   structured depth through the depth modulation; object latents through the
   object guider. DDIM with classifier-free guidance (the unconditional half
   gets a zero CLIP embedding, same reference bank and pose, as in
   Moore-AnimateAnyone).
4. Every finished frame is decoded and composited over the exact environment
   with ``composite_character`` (depth test, pixels outside the dilated mask
   are the environment's own) and yielded at once -- callers can stream.

Noise is drawn per frame from (seed, frame index), so results do not depend
on how the shot is cut into windows or on the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline

from .conditioning import composite_character, draw_skeleton, shape_agnostic_mask, structured_depth
from .denoising_unet import add_after_conv_in, blend_objects
from ..errors import InputError
from .object_guider import decoder_blend_levels
from .reference_attention import FUSION_MODES, ReferenceBank, fuse_reference

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Region outside which the composite is the environment, bit for bit.
REGION_DILATE_PX = 4


@dataclass
class AA2Output:
    frames: np.ndarray   # uint8 [F, H, W, 4]
    mattes: np.ndarray   # uint8 [F, H, W]


def plan_windows(num_frames: int, context_frames: int, overlap: int) -> list[tuple[int, int]]:
    """Windows [start, end) covering the shot; consecutive windows share at
    least ``overlap`` frames (the last one is aligned to the end)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if context_frames < 1:
        raise ValueError(f"context_frames must be at least 1, got {context_frames}")
    if not 0 <= overlap < context_frames:
        raise ValueError(f"overlap must be in [0, context_frames), got {overlap} for {context_frames}")
    if num_frames <= context_frames:
        return [(0, num_frames)]
    stride = context_frames - overlap
    windows, start = [], 0
    while True:
        end = start + context_frames
        if end >= num_frames:
            windows.append((num_frames - context_frames, num_frames))
            break
        windows.append((start, end))
        start += stride
    return windows


def _frame_noise(seed: int, index: int, shape: tuple) -> torch.Tensor:
    g = torch.Generator("cpu").manual_seed((int(seed) * 1_000_003 + index) % (2**63 - 1))
    return torch.randn(shape, generator=g, dtype=torch.float32)


class AnimateAnyone2Pipeline(DiffusionPipeline):
    model_cpu_offload_seq = ("image_encoder->reference_unet->pose_guider->depth_modulation->object_guider"
                             "->denoising_unet->vae")

    def __init__(self, vae, image_encoder, reference_unet, denoising_unet, pose_guider,
                 depth_modulation, object_guider, scheduler, fusion_mode: str = "mid_up"):
        super().__init__()
        if fusion_mode not in FUSION_MODES:
            raise ValueError(f"fusion_mode must be one of {FUSION_MODES}, got {fusion_mode!r}")
        self.register_modules(vae=vae, image_encoder=image_encoder, reference_unet=reference_unet,
                              denoising_unet=denoising_unet, pose_guider=pose_guider,
                              depth_modulation=depth_modulation, object_guider=object_guider,
                              scheduler=scheduler)
        self.register_to_config(fusion_mode=fusion_mode)

    # -- sizes ---------------------------------------------------------------------
    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        return self.vae_scale * 2 ** (len(self.denoising_unet.config.block_out_channels) - 1)

    def work_size(self, height: int, width: int) -> tuple[int, int]:
        """The generation resolution: the job's, rounded to what the UNet can divide."""
        m = self.size_multiple
        return max(m, int(round(height / m)) * m), max(m, int(round(width / m)) * m)

    # -- encoders --------------------------------------------------------------------
    def prepare_images(self, images: np.ndarray, size: tuple[int, int], dtype) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> float [N, 3, h, w] in [-1, 1] at work size."""
        h, w = size
        out = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) if im.shape[:2] != (h, w) else im
                        for im in images])
        t = torch.from_numpy(out).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        return t.to(self.device, dtype)

    def encode_images(self, images: torch.Tensor, chunk: int = 4) -> torch.Tensor:
        """Images from ``prepare_images`` -> scaled VAE latents [N, 4, h/8, w/8] (the posterior's mode)."""
        # Frame chunks bound the VAE's activation memory (slicing).
        lat = [self.vae.encode(images[i:i + chunk]).latent_dist.mode() for i in range(0, images.shape[0], chunk)]
        return torch.cat(lat) * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor, chunk: int = 4) -> np.ndarray:
        """Scaled VAE latents -> uint8 [N, h, w, 3]."""
        lat = latents.to(self.vae.dtype) / self.vae.config.scaling_factor
        imgs = [self.vae.decode(lat[i:i + chunk]).sample for i in range(0, lat.shape[0], chunk)]
        img = torch.cat(imgs).float().clamp(-1, 1).add(1).mul(127.5).round()
        return img.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()

    def encode_reference_clip(self, reference: np.ndarray) -> torch.Tensor:
        """The CLIP image embedding [1, 1, D] of an RGB reference (``prepare_reference``)."""
        size = self.image_encoder.config.image_size
        im = cv2.resize(reference, (size, size), interpolation=cv2.INTER_AREA)
        t = torch.from_numpy(im).float().div(255.0).permute(2, 0, 1)[None]
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        t = ((t - mean) / std).to(self.device, self.image_encoder.dtype)
        return self.image_encoder(pixel_values=t).image_embeds[:, None]   # [1, 1, D]

    @staticmethod
    def prepare_reference(reference) -> np.ndarray:
        """A checked uint8 RGB reference; RGBA cut-outs are put on white."""
        if reference is None:
            raise InputError("reference image is required (uint8 [h, w, 3|4])", field="submit.reference")
        ref = np.asarray(reference)
        if ref.dtype != np.uint8 or ref.ndim != 3 or ref.shape[2] not in (3, 4) or min(ref.shape[:2]) < 1:
            raise InputError(f"reference must be uint8 [h, w, 3|4], got {ref.dtype}{list(ref.shape)}",
                             field="submit.reference")
        if ref.shape[2] == 4:
            # Cut-out references sit on white, the usual background of reference sheets.
            a = ref[..., 3:4].astype(np.float32) / 255.0
            ref = np.rint(ref[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)
        return np.ascontiguousarray(ref)

    # -- per-frame conditioning -------------------------------------------------------
    @staticmethod
    def check_frame(i: int, frame: Mapping[str, np.ndarray], height: int, width: int) -> None:
        """Raise InputError naming the input (the protocol's name) and what was expected.

        The server has already checked frames that came over the wire; this
        guards direct callers of the pipeline (scripts, the trainer, benches)."""
        def need(name, dtype, shape, optional=False):
            a = frame.get(name)
            if a is None:
                if optional:
                    return
                raise InputError(f"frame {i}: {name} is missing", field=f"frame.{name}")
            a = np.asarray(a)
            if a.dtype != np.dtype(dtype) or tuple(a.shape) != tuple(shape):
                raise InputError(f"frame {i}: {name} must be {dtype}{list(shape)}, got {a.dtype}{list(a.shape)}",
                                 field=f"frame.{name}")
        need("environment", "uint8", (height, width, 3))
        need("character_mask", "uint8", (height, width))
        if frame.get("skeleton") is None:
            kp = frame.get("keypoints")
            if kp is None:
                raise InputError(f"frame {i}: keypoints (or a skeleton map) is missing", field="frame.keypoints")
            kp = np.asarray(kp)
            if kp.ndim != 2 or kp.shape[1] != 4:
                raise InputError(f"frame {i}: keypoints must be float32 [K, 4], got {kp.dtype}{list(kp.shape)}",
                                 field="frame.keypoints")
        else:
            need("skeleton", "uint8", (height, width, 3))
        need("character_depth", "float32", (height, width), optional=True)
        need("scene_depth", "float32", (height, width), optional=True)
        need("object_labels", "uint8", (height, width), optional=True)

    # -- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def stream(self, reference, get_frame: Callable[[int], Mapping[str, np.ndarray]], num_frames: int, *,
               height: int, width: int, steps: int = 25, guidance: float = 3.5, seed: int = 0,
               context_frames: int = 16, overlap: int = 4, mask_block: int = 10,
               on_step: Callable[[dict], None] | None = None,
               on_release: Callable[[int], None] | None = None,
               reference_per_step: bool = False) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield (frame index, rgba uint8 [H, W, 4], matte uint8 [H, W]) in order.

        ``get_frame(i)`` returns frame i's inputs (environment, character_mask,
        keypoints or skeleton, optional character_depth, scene_depth,
        object_labels). ``on_step(info)`` is called after every denoising step;
        raising from it cancels. ``on_release(upto)`` says no frame below
        ``upto`` will be asked for again. ``reference_per_step`` recomputes the
        ReferenceNet every step (what a naive port does; for the benchmark only).
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        max_ctx = int(getattr(self.denoising_unet.config, "motion_max_seq_length", 32) or 32)
        if context_frames > max_ctx:
            raise ValueError(f"context_frames must be at most {max_ctx} (the motion modules' "
                             f"positional table), got {context_frames}")
        ref_rgb = self.prepare_reference(reference)
        windows = plan_windows(num_frames, context_frames, overlap)
        work = self.work_size(height, width)
        lat_hw = (work[0] // self.vae_scale, work[1] // self.vae_scale)
        unet = self.denoising_unet
        dtype = unet.dtype

        ref_latent = self.encode_images(self.prepare_images(ref_rgb[None], work, self.vae.dtype))
        clip_cond = self.encode_reference_clip(ref_rgb).to(dtype)
        bank = ReferenceBank(self.config.fusion_mode).compute(
            self.reference_unet, ref_latent.to(self.reference_unet.dtype), clip_cond.to(self.reference_unet.dtype))
        do_cfg = guidance > 1.0
        blend_names, _ = decoder_blend_levels(unet.config)

        self.scheduler.set_timesteps(steps, device=self.device)
        timesteps = self.scheduler.timesteps
        carry: dict[int, torch.Tensor] = {}     # frame -> final latent from the previous window
        cache: dict[int, Mapping] = {}
        next_emit = 0
        for wi, (start, end) in enumerate(windows):
            nf = end - start
            for i in range(start, end):
                if i not in cache:
                    fr = get_frame(i)
                    self.check_frame(i, fr, height, width)
                    cache[i] = fr
            frames = [cache[i] for i in range(start, end)]
            agnostic = [shape_agnostic_mask(f["character_mask"], (mask_block, mask_block)) for f in frames]
            cond = self.prepare_conditioning(frames, agnostic, work, lat_hw, height, width)
            noise = torch.stack([_frame_noise(seed, i, (4,) + lat_hw) for i in range(start, end)]).to(self.device)
            latents = noise * self.scheduler.init_noise_sigma
            carried = [i - start for i in range(start, end) if i in carry]
            carried_lat = torch.stack([carry[start + j] for j in carried]) if carried else None

            enc = clip_cond.repeat_interleave(nf, dim=0)                 # [F, 1, D]
            if do_cfg:
                enc = torch.cat([torch.zeros_like(enc), enc])
            for si, t in enumerate(timesteps):
                if reference_per_step:
                    bank = ReferenceBank(self.config.fusion_mode).compute(
                        self.reference_unet, ref_latent.to(self.reference_unet.dtype),
                        clip_cond.to(self.reference_unet.dtype))
                if carried:
                    latents[carried] = self.scheduler.add_noise(carried_lat, noise[carried], t.reshape(1))
                x = torch.cat([latents.to(dtype), cond["env"], cond["mask"]], dim=1)   # [F, 9, h, w]
                x = x.permute(1, 0, 2, 3)[None]                                       # [1, 9, F, h, w]
                if do_cfg:
                    x = torch.cat([x, x])
                with fuse_reference(unet, bank, nf), add_after_conv_in(unet, cond["pose"]), \
                        blend_objects(unet, self.object_guider, blend_names, cond["objects"]):
                    pred = unet(x, t, encoder_hidden_states=enc).sample             # [B, 4, F, h, w]
                pred = pred.float()
                if do_cfg:
                    uncond, cnd = pred.chunk(2)
                    pred = uncond + guidance * (cnd - uncond)
                pred = pred[0].permute(1, 0, 2, 3)                                   # [F, 4, h, w]
                latents = self.scheduler.step(pred, t, latents).prev_sample
                if on_step is not None:
                    on_step({"window": wi, "windows": len(windows), "step": si + 1, "steps": steps,
                             "start": start, "end": end, "frames": num_frames})
            if carried_lat is not None:
                # Cross-fade the carried frames: the earlier window's result
                # fades out over the overlap, the new one fades in.
                ramp = torch.linspace(0, 1, len(carried) + 2, device=latents.device)[1:-1].view(-1, 1, 1, 1)
                latents[carried] = (1 - ramp) * carried_lat + ramp * latents[carried]
            last = wi == len(windows) - 1
            emit_end = end if last else windows[wi + 1][0]
            carry = {} if last else {i: latents[i - start].clone() for i in range(windows[wi + 1][0], end)}
            if emit_end > next_emit:
                lo = next_emit - start
                images = self.decode_latents(latents[lo:emit_end - start])
                for k, img in enumerate(images):
                    i = next_emit + k
                    yield (i,) + self._composite(cache[i], agnostic[i - start], img, height, width)
                next_emit = emit_end
            keep_from = end if last else windows[wi + 1][0]
            for i in [i for i in cache if i < keep_from]:
                del cache[i]
            if on_release is not None:
                on_release(keep_from)

    def prepare_conditioning(self, frames, agnostic, work, lat_hw, height, width) -> dict:
        """One window's conditioning tensors (environment latents, mask, pose, depth, objects) from its
        frame dicts and shape-agnostic masks, at work size ``work`` and latent size ``lat_hw``; the
        trainer calls it too, so training and inference condition alike."""
        dtype = self.denoising_unet.dtype
        env = np.stack([f["environment"] for f in frames])
        masks = np.stack(agnostic)
        blank = env * (masks[..., None] == 0)          # the region to generate is blanked
        z_env = self.encode_images(self.prepare_images(blank, work, self.vae.dtype)).to(dtype)
        m = torch.from_numpy(masks).float().div(255.0)[:, None].to(self.device)
        # Max-pooling keeps every latent cell that touches the region marked.
        m = F.adaptive_max_pool2d(m, lat_hw).to(dtype)

        skeletons, sdepths = [], []
        for f in frames:
            sk = f.get("skeleton")
            if sk is None:
                sk = draw_skeleton(np.asarray(f["keypoints"], np.float32), height, width)
            skeletons.append(sk)
            cd = f.get("character_depth")
            sdepths.append(structured_depth(cd, sk) if cd is not None else np.zeros((height, width), np.float32))
        h, w = work
        sk = np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in skeletons])
        sk_t = torch.from_numpy(sk).permute(0, 3, 1, 2).float().div(255.0).to(self.device, self.pose_guider.dtype)
        pose = self.pose_guider(sk_t)
        if self.depth_modulation is not None:
            sd = np.stack([cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST) for d in sdepths])
            sd_t = torch.from_numpy(sd)[:, None].to(self.device, self.depth_modulation.dtype)
            pose = self.depth_modulation(pose.to(self.depth_modulation.dtype), sd_t, len(frames))

        objects = None
        if self.object_guider is not None and any(
                f.get("object_labels") is not None and np.any(f["object_labels"]) for f in frames):
            om = np.stack([(f["object_labels"] > 0) if f.get("object_labels") is not None
                           else np.zeros((height, width), bool) for f in frames])
            obj_img = env * om[..., None]
            z_obj = self.encode_images(self.prepare_images(obj_img.astype(np.uint8), work, self.vae.dtype))
            objects = [o.to(dtype) for o in self.object_guider(z_obj.to(self.object_guider.dtype))]
        return {"env": z_env, "mask": m, "pose": pose.to(dtype), "objects": objects}

    @staticmethod
    def _composite(frame, agnostic, generated, height, width):
        if generated.shape[:2] != (height, width):
            generated = cv2.resize(generated, (width, height), interpolation=cv2.INTER_LINEAR)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * REGION_DILATE_PX + 1,) * 2)
        region = cv2.dilate(agnostic, kernel)
        return composite_character(frame["environment"], generated, agnostic.astype(np.float32) / 255.0,
                                   character_depth=frame.get("character_depth"),
                                   scene_depth=frame.get("scene_depth"), region=region)

    def __call__(self, reference, environment, character_mask, keypoints=None, *, skeleton=None,
                 character_depth=None, scene_depth=None, object_labels=None, **kwargs) -> AA2Output:
        """Whole-shot convenience wrapper around ``stream``.

        environment uint8 [F, H, W, 3]; character_mask uint8 [F, H, W];
        keypoints float32 [F, K, 4] or skeleton uint8 [F, H, W, 3]; optional
        character_depth / scene_depth float32 [F, H, W], object_labels uint8 [F, H, W].
        """
        environment = np.asarray(environment)
        if environment.ndim != 4 or environment.shape[-1] != 3:
            raise InputError(f"environment must be uint8 [F, H, W, 3], got {list(environment.shape)}",
                             field="frame.environment")
        n, height, width = environment.shape[:3]
        per_frame = {"character_mask": character_mask, "keypoints": keypoints, "skeleton": skeleton,
                     "character_depth": character_depth, "scene_depth": scene_depth,
                     "object_labels": object_labels}
        if keypoints is None and skeleton is None:
            raise InputError("keypoints (or skeleton) is required", field="frame.keypoints")
        for name, arr in per_frame.items():
            if arr is not None and len(arr) != n:
                raise InputError(f"{name} has {len(arr)} frames but environment has {n}", field=f"frame.{name}")

        def get_frame(i):
            d = {"environment": environment[i]}
            d.update({k: v[i] for k, v in per_frame.items() if v is not None})
            return d

        frames = np.empty((n, height, width, 4), np.uint8)
        mattes = np.empty((n, height, width), np.uint8)
        for i, rgba, matte in self.stream(reference, get_frame, n, height=height, width=width, **kwargs):
            frames[i], mattes[i] = rgba, matte
        return AA2Output(frames, mattes)


def load_pipeline(path: str, *, device: str = "cpu", dtype: str | None = None,
                  vae_tiling: bool = False) -> AnimateAnyone2Pipeline:
    """Load a pipeline folder (local only, safetensors) onto ``device``/``dtype``.

    ``dtype`` is "float32", "float16" or "bfloat16" (None: float16 on CUDA,
    float32 elsewhere -- CPU half precision is slow and poorly supported).
    """
    import os

    # diffusers loads custom components only from modules already imported
    # (it never imports what a folder names); these are ours.
    import sys

    from . import depth_modulation, object_guider, pose_guider  # noqa: F401
    from .weights_check import COMPONENT_LIBRARIES, LEGACY_MODULES
    for old, new in LEGACY_MODULES.items():
        sys.modules.setdefault(old, sys.modules[new])
    if not os.path.isdir(path):
        raise FileNotFoundError(f"weights folder {path!r} does not exist")
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype is None:
        dtype = "float16" if str(device).startswith("cuda") else "float32"
    if dtype not in names:
        raise ValueError(f"dtype must be one of {sorted(names)}, got {dtype!r}")
    import json
    index_path = os.path.join(path, "model_index.json")
    if not os.path.exists(index_path):
        raise FileNotFoundError(f"{path!r} has no model_index.json -- not a pipeline folder")
    with open(index_path) as fh:
        index = json.load(fh)
    for name, entry in index.items():
        if isinstance(entry, list) and entry and entry[0] not in COMPONENT_LIBRARIES:
            raise ValueError(f"{path}: component {name!r} names library {entry[0]!r}; "
                             f"only {sorted(COMPONENT_LIBRARIES)} are loaded")
    pipe = AnimateAnyone2Pipeline.from_pretrained(path, local_files_only=True, use_safetensors=True,
                                                  dtype=names[dtype])
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    # Tensors loaded from safetensors may sit at unaligned offsets of the
    # mapped file; CPU kernels then take other vector paths and results drift
    # by ~1e-6 from the same weights in fresh memory. Own, aligned copies make
    # a loaded pipeline compute bit-exactly what the saved one did (and free
    # the file mapping).
    for _, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            for t in list(component.parameters()) + list(component.buffers()):
                t.data = t.data.clone()
    if vae_tiling:
        pipe.vae.enable_tiling()
    return pipe
