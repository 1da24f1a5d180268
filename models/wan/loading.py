"""A Wan-Animate Diffusers folder -> a ready ``WanAnimatePipeline``.

Local files only. The text encoder and tokenizer are left out (prompts come
from ``models.wan.prompts``' cache); the image processor is the PIL one
(transformers 5's ``CLIPImageProcessor`` needs torchvision). On CUDA the
transformer and CLIP run in bf16 and the VAE in fp32 (as diffusers' docs
load Wan); on the CPU everything is fp32.
"""
from __future__ import annotations

import os

from .weights_check import check_wan_folder, transformer_params


class WeightsFolderError(ValueError):
    """The weights folder cannot be used; the message says why and what to do."""


def component_dtypes(device: str) -> dict:
    import torch
    if str(device).startswith("cuda"):
        return {"transformer": torch.bfloat16, "image_encoder": torch.bfloat16, "default": torch.float32}
    return {"default": torch.float32}


def check_or_raise(folder: str) -> dict:
    ok, lines, facts = check_wan_folder(folder)
    if not ok:
        first = next(line for line in lines if line.startswith("ERROR"))
        raise WeightsFolderError(first[len("ERROR "):] + " (details: inhabit weights check DIR)")
    return facts


def load_pipeline(folder: str, *, device: str = "cpu", memory: str = "auto", segment_hint=(480, 832, 77),
                  fp8: bool = False, attention: str = "sdpa", before_tier=None):
    """(pipeline, tier, reason). ``segment_hint`` = (height, width, frames) the
    tier is sized for when ``memory`` is auto; ``fp8`` and ``attention`` as in
    ``models.wan.accel``. ``before_tier(pipe)`` runs on the loaded pipeline before
    fp8 casting and device placement (the server's LoRA slots load there, so the
    LoRA matrices keep their precision)."""
    from diffusers import WanAnimatePipeline
    from transformers import CLIPImageProcessorPil

    from . import memory as M

    facts = check_or_raise(folder)
    processor = CLIPImageProcessorPil.from_pretrained(folder, subfolder="image_processor", local_files_only=True)
    pipe = WanAnimatePipeline.from_pretrained(folder, text_encoder=None, tokenizer=None, image_processor=processor,
                                              dtype=component_dtypes(device), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    for m in (pipe.transformer, pipe.vae, pipe.image_encoder):
        m.eval()
    from .accel import attention_backend, fp8_method
    if attention != "sdpa":
        pipe.transformer.set_attention_backend(attention_backend(attention))
    if before_tier is not None:
        before_tier(pipe)
    tier, reason = memory, "asked for"
    if memory == "auto":
        tier, reason = M.choose_tier(M.free_vram(device), needs_for(facts, pipe, *segment_hint, fp8=fp8))
    M.apply_tier(pipe, tier, device, fp8=fp8_method(device) if fp8 else False)   # torchao: see accel.apply_fp8
    return pipe, tier, reason


def needs_for(facts: dict, pipe_or_cfg, height: int, width: int, frames: int, *, fp8: bool = False) -> dict:
    from . import memory as M
    cfg = pipe_or_cfg.transformer.config if hasattr(pipe_or_cfg, "transformer") else pipe_or_cfg
    inner = int(cfg["num_attention_heads"]) * int(cfg["attention_head_dim"])
    others = sum(sum(_numel(v["shape"]) for v in facts["tensors"].get(c, {}).values())
                 for c in ("vae", "image_encoder"))
    return M.estimate(transformer_params(facts), others, inner, height, width, frames, fp8=fp8)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def folder_is_writable(folder: str) -> bool:
    return os.access(folder, os.W_OK)
