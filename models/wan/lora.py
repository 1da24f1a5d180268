"""LoRA files as published, on the Wan-Animate transformer, several at once.

Wan-Animate's transformer is Wan 2.1 I2V-14B's plus the pose, motion and face
modules, so the LoRAs people run with it are Wan 2.1 I2V LoRAs (lightx2v's
step distillation) and Wan's own relighting LoRA. They are published in these
key layouts (``models/wan/lora_layouts.py`` recognises each):

  comfy      ``diffusion_model.blocks.N.self_attn.q.lora_down.weight`` / ``lora_up`` (or
             ``lora_A``/``lora_B``), optional ``.alpha``, ``.diff_b`` bias and ``.diff`` norm
             deltas, plus ``head.head``, ``img_emb.proj.N``, ``text_/time_embedding``:
             Kijai's ComfyUI files and lightx2v's own
  wan-peft   ``blocks.N.self_attn.q.lora_A.weight``: Wan's ``relighting_lora.ckpt``
             (a peft state dict of Wan's module names, no prefix, under ``state_dict``)
  musubi     ``lora_unet_blocks_N_self_attn_q.lora_down.weight``
  diffusers  ``transformer.blocks.N.attn1.to_q.lora_A.weight``

Conversion is diffusers' own (``WanLoraLoaderMixin.lora_state_dict``, i.e.
``_convert_non_diffusers_wan_lora_to_diffusers`` from diffusers PR #12040 and
the musubi converter); the only map written here is the small one that puts
Wan's peft names under the ``diffusion_model.`` prefix that converter expects,
and the one that names, for the fit check, the layer each original key adapts.

Checked before the pipe is touched: every pair must name a Linear of this
transformer with the right widths. A file that does not fit gets one sentence
naming its first mismatched key and what was expected. ``.ckpt``/``.pt`` files
are read with ``torch.load(weights_only=True)`` (tensors only, no code).
"""
from __future__ import annotations

import os
from typing import Any

from .lora_layouts import LoraMismatch, diffusers_layout, normalise

__all__ = ["LoraMismatch", "AdapterSet", "read_lora_file", "check_lora"]


def read_lora_file(path: str) -> dict:
    """{key: tensor} of a LoRA file; LoraMismatch (one sentence) when it cannot be read."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise LoraMismatch(f"LoRA file {path!r} does not exist on the server")
    try:
        state: Any
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(path)
        elif path.endswith((".ckpt", ".pt", ".pth", ".bin")):
            import torch
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise LoraMismatch(f"LoRA file {name} is neither .safetensors nor a torch .ckpt/.pt file")
    except LoraMismatch:
        raise
    except Exception as exc:  # noqa: BLE001 -- a file that cannot be read is a bad file, said in one sentence
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise LoraMismatch(f"LoRA file {name} cannot be read as tensors ({reason}); give a .safetensors LoRA or a "
                           "torch checkpoint of tensors only") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]           # Wan's relighting_lora.ckpt keeps its peft dict there
    import torch
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)} \
        if isinstance(state, dict) else {}
    if not tensors:
        raise LoraMismatch(f"LoRA file {name} holds no tensors")
    return tensors


def check_lora(pipe, path: str) -> dict:
    """The file's state dict in a layout ``load_lora_weights`` converts, after checking it fits
    ``pipe.transformer``; raises LoraMismatch (one sentence) otherwise."""
    name = os.path.basename(path)
    raw = read_lora_file(path)
    state = normalise(raw, name)
    fit_check = diffusers_layout(state, name)
    fit_check.raise_unless_fits(dict(pipe.transformer.named_modules()), name)
    try:   # diffusers' own conversion, run once here so its failure is ours to word
        pipe.lora_state_dict(dict(state))
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise LoraMismatch(f"LoRA file {name} is not a Wan LoRA diffusers can convert ({reason}); use a LoRA "
                           "made for Wan 2.1 I2V-14B or Wan2.2-Animate-14B") from None
    return state


class AdapterSet:
    """The LoRAs loaded into one pipeline, each a named peft adapter with its own strength.

    A file is read, checked and loaded once per (name, path); later jobs only switch
    strengths (``set_adapters``) or turn them off, which costs nothing."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.paths: dict[str, str] = {}      # adapter name -> the file loaded under it

    def ensure(self, name: str, path: str) -> None:
        if self.paths.get(name) == path:
            return
        state = check_lora(self.pipe, path)   # before anything changes: a bad file leaves the pipe as it was
        if name in self.paths:
            self.pipe.delete_adapters([name])
            del self.paths[name]
        self.pipe.load_lora_weights(state, adapter_name=name)
        self.paths[name] = path

    def activate(self, wanted: dict[str, float]) -> None:
        """Exactly the adapters in ``wanted`` ({name: strength}) act; every other stays loaded, off."""
        if not self.paths:
            return
        if not wanted:
            self.pipe.disable_lora()
            return
        self.pipe.enable_lora()
        names = list(wanted)
        self.pipe.set_adapters(names, [float(wanted[n]) for n in names])
