"""LoRA for the Wan-Animate transformer (e.g. Wan's relighting LoRA), through
diffusers' ``load_lora_weights`` (peft).

Checked before any long work: diffusers' own key conversion
(``WanAnimatePipeline.lora_state_dict``, which understands the original
``diffusion_model.blocks.N...`` names too) is run on the file, and every LoRA
pair must name a Linear of this transformer with matching in/out widths. A
LoRA for another model family otherwise loads with only a warning and does
nothing -- or fails an hour in.
"""
from __future__ import annotations

import os


class LoraMismatch(ValueError):
    pass


def check_lora(pipe, path: str) -> int:
    """Number of adapted layers; raises LoraMismatch (one sentence) when the file does not fit."""
    if not os.path.isfile(path):
        raise LoraMismatch(f"LoRA file {path!r} does not exist on the server")
    if not path.endswith(".safetensors"):
        raise LoraMismatch(f"LoRA file {path!r} is not .safetensors; only safetensors are loaded (convert it first)")
    try:
        state = pipe.lora_state_dict(path)
    except Exception as exc:  # noqa: BLE001 -- any failure to read/convert is a bad file for this model
        raise LoraMismatch(f"LoRA file {os.path.basename(path)} cannot be read as a Wan LoRA: {exc}") from None
    if isinstance(state, tuple):
        state = state[0]
    modules = dict(pipe.transformer.named_modules())
    pairs, bad = 0, []
    for key, tensor in state.items():
        if ".lora_A." not in key and ".lora_down." not in key:
            continue
        name = key.split(".lora_A.")[0].split(".lora_down.")[0]
        name = name[len("transformer."):] if name.startswith("transformer.") else name
        layer = modules.get(name)
        if layer is None or not hasattr(layer, "in_features"):
            bad.append(f"{name} (no such layer)")
            continue
        if tensor.shape[-1] != layer.in_features:
            bad.append(f"{name} (input width {tensor.shape[-1]}, layer has {layer.in_features})")
            continue
        pairs += 1
    if bad or not pairs:
        first = bad[0] if bad else "no LoRA layers found"
        raise LoraMismatch(f"LoRA file {os.path.basename(path)} does not fit this Wan-Animate transformer: "
                           f"{len(bad)} of {len(bad) + pairs} layers do not match (first: {first}); use a LoRA "
                           "trained for Wan2.2-Animate-14B")
    return pairs


def apply_lora(pipe, path: str | None, strength: float, *, loaded: dict) -> None:
    """Load (once per file) and set the strength; ``loaded`` remembers what is in the pipe."""
    name = "inhabit_lora"
    if not path:
        if loaded.get("path"):
            pipe.disable_lora()          # kept loaded for the next job that asks for it
        return
    if loaded.get("path") != path:
        check_lora(pipe, path)           # before anything is changed: a bad file leaves the pipe as it was
        if loaded.get("path"):
            pipe.delete_adapters([name])
            loaded.pop("path")
        pipe.load_lora_weights(path, adapter_name=name)
        loaded["path"] = path
    pipe.enable_lora()
    pipe.set_adapters([name], [float(strength)])
