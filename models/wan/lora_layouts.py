"""Which layer of the diffusers Wan-Animate transformer each key of a published
LoRA file adapts, so a file is checked -- and its first misfit named -- before
anything is loaded. The layouts are listed in ``models/wan/lora.py``.

The Wan -> diffusers names below are the ones diffusers' own converter
(``_convert_non_diffusers_wan_lora_to_diffusers``) writes; they are repeated
here only to name the original key in a mismatch, the conversion itself stays
diffusers'.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Wan's module names inside block N -> diffusers' (WanTransformerBlock of transformer_wan_animate).
BLOCK_NAMES = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k", "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0", "cross_attn.k_img": "attn2.add_k_proj", "cross_attn.v_img": "attn2.add_v_proj",
    "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2",
}
# Wan's top-level modules -> diffusers'.
TOP_NAMES = {
    "head.head": "proj_out",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
}
EXPECTED = ("blocks.N.self_attn.{q,k,v,o}, blocks.N.cross_attn.{q,k,v,o,k_img,v_img}, blocks.N.ffn.{0,2}, "
            "head.head, img_emb.proj.{1,3}, text_embedding.{0,2}, time_embedding.{0,2} or time_projection.1")
_PAIR = re.compile(r"^(?P<module>.+)\.(?P<role>lora_A|lora_B|lora_down|lora_up)(?:\.default)?\.weight$")
_MUSUBI = re.compile(r"^lora_unet_blocks_(?P<n>\d+)_(?P<name>self_attn_(?:q|k|v|o)|cross_attn_(?:q|k|v|o|k_img|v_img)"
                     r"|ffn_(?:0|2))\.(?P<role>lora_down|lora_up)\.weight$")
_WAN_TOP = ("blocks.", "head.", "img_emb.", "text_embedding.", "time_embedding.", "time_projection.",
            "patch_embedding.")


class LoraMismatch(ValueError):
    """The LoRA file does not fit this transformer; the message is one sentence naming the first misfit."""


def _mismatch(file_name: str, key: str, problem: str) -> LoraMismatch:
    return LoraMismatch(f"LoRA file {file_name} does not fit this Wan-Animate transformer: its first mismatched key "
                        f"{key!r} {problem}; use a LoRA made for Wan 2.1 I2V-14B or Wan2.2-Animate-14B")


def normalise(state: dict, file_name: str) -> dict:
    """The same tensors under keys diffusers' ``WanLoraLoaderMixin.lora_state_dict`` converts:
    Wan's peft names get the ``diffusion_model.`` prefix, bare diffusers names ``transformer.``,
    ComfyUI's ``model.diffusion_model.`` loses its ``model.``; peft's ``.default`` adapter name goes."""
    out = {}
    for key, value in state.items():
        k = key.replace(".lora_A.default.weight", ".lora_A.weight").replace(".lora_B.default.weight",
                                                                               ".lora_B.weight")
        if k.startswith("model.diffusion_model."):
            k = k[len("model."):]
        if k.startswith(("diffusion_model.", "transformer.", "lora_unet_")):
            pass
        elif k.startswith("blocks.") and re.match(r"blocks\.\d+\.(attn1|attn2|ffn\.net|norm2)\.", k):
            k = "transformer." + k               # diffusers names without the pipeline's prefix
        elif k.startswith(_WAN_TOP):
            k = "diffusion_model." + k           # Wan's own names (the relighting LoRA's peft dict)
        else:
            raise _mismatch(file_name, key, f"is in no Wan LoRA layout (expected diffusion_model.{EXPECTED}, "
                                            "their lora_unet_ forms, or diffusers' transformer.blocks.N.attn1... "
                                            "names)")
        out[k] = value
    return out


@dataclass
class FitCheck:
    """(file key, diffusers module name or None, role 'A'/'B', shape) for every LoRA weight of a file."""
    entries: list = field(default_factory=list)

    def raise_unless_fits(self, modules: dict, file_name: str) -> int:
        """Number of adapted layers; LoraMismatch naming the first key that does not fit."""
        layers = set()
        for key, target, role, shape in self.entries:
            if target is None:
                raise _mismatch(file_name, key, f"names no layer of a Wan transformer (expected {EXPECTED})")
            layer = modules.get(target)
            if layer is None:
                raise _mismatch(file_name, key, f"adapts {target}, which this transformer does not have")
            if not hasattr(layer, "in_features"):
                raise _mismatch(file_name, key, f"adapts {target}, which is not a Linear layer here")
            if len(shape) != 2:
                raise _mismatch(file_name, key, f"has shape {list(shape)} where a 2-D LoRA matrix was expected")
            if role == "A" and shape[1] != layer.in_features:
                raise _mismatch(file_name, key, f"has shape {list(shape)} where {target} takes "
                                                f"[rank, {layer.in_features}]")
            if role == "B" and shape[0] != layer.out_features:
                raise _mismatch(file_name, key, f"has shape {list(shape)} where {target} takes "
                                                f"[{layer.out_features}, rank]")
            layers.add(target)
        if not layers:
            raise LoraMismatch(f"LoRA file {file_name} holds no LoRA pairs (keys ending lora_A/lora_B or "
                               "lora_down/lora_up .weight)")
        return len(layers)


def diffusers_layout(state: dict, file_name: str) -> FitCheck:
    """The fit check of a ``normalise``d state dict (keys in the file's order)."""
    check = FitCheck()
    for key, value in state.items():
        shape = tuple(value.shape)
        m = _MUSUBI.match(key)
        if m:
            target = f"blocks.{m['n']}.{BLOCK_NAMES[m['name'].replace('_attn_', '_attn.').replace('ffn_', 'ffn.')]}"
            check.entries.append((key, target, "A" if m["role"] == "lora_down" else "B", shape))
            continue
        m = _PAIR.match(key)
        if not m:
            continue                             # .alpha, .diff, .diff_b: scalings and deltas the converter handles
        role = "A" if m["role"] in ("lora_A", "lora_down") else "B"
        module = m["module"]
        if module.startswith("transformer."):
            check.entries.append((key, module[len("transformer."):], role, shape))
        elif module.startswith("diffusion_model."):
            check.entries.append((key, wan_to_diffusers(module[len("diffusion_model."):]), role, shape))
        else:
            check.entries.append((key, None, role, shape))
    return check


def wan_to_diffusers(name: str) -> str | None:
    """``blocks.3.self_attn.q`` -> ``blocks.3.attn1.to_q``; None for a name with no Linear in diffusers."""
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if m:
        inner = BLOCK_NAMES.get(m.group(2))
        return f"blocks.{m.group(1)}.{inner}" if inner else None
    return TOP_NAMES.get(name)
