"""Synthetic LoRA files in the key layouts the published Wan LoRAs use, at the
tiny configuration's widths (``models/wan/tiny.py``: inner 24, FFN 32, text 32,
image 4, time 256, 2 blocks, output 64). Random values, exact names and shapes:

comfy_distill   Kijai's ComfyUI extraction of lightx2v's step/CFG distillation
                (``Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank32_bf16.safetensors``):
                ``diffusion_model.`` + Wan's module names, ``lora_down``/``lora_up``, ``.diff_b``
                bias deltas, ``.diff`` norm deltas (``cross_attn.norm_k_img.diff`` is the key other
                loaders reject, Wan2GP issue 524), the ``blocks.N.diff_m`` modulation delta
                (ComfyUI-WanVideoWrapper issue 807), and the head / image / text / time
                embeddings diffusers' PR #12040 converts. At the real size the rank is 32 and
                the widths 5120 / 13824 / 4096 / 1280 / 256 / 64, 40 blocks.
lightx2v_distill lightx2v's own files (``wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors``,
                LightX2V's Animate config): ``diffusion_model.`` + Wan names with ``lora_A``/``lora_B``
                and an ``.alpha`` per layer (LightX2V's loader reads both namings and alphas).
wan_relight     Wan's ``relighting_lora.ckpt``: a peft state dict of Wan's own module names, no
                prefix, ``lora_A``/``lora_B``, every Linear of the blocks except the face adapter
                and modulation (wan/modules/animate/animate_utils.py ``get_loraconfig``, rank 128,
                alpha 128), saved by ``torch.save`` under ``"state_dict"``.
"""
from __future__ import annotations

DIM, FFN, TEXT, IMAGE, FREQ, OUT, BLOCKS = 24, 32, 32, 4, 256, 64, 2
ATTN = ("q", "k", "v", "o")


def _linear_shapes(blocks: int = BLOCKS) -> dict:
    """Wan module name -> (in, out) of every Linear a Wan 2.1 I2V LoRA adapts."""
    shapes = {}
    for i in range(blocks):
        for o in ATTN:
            shapes[f"blocks.{i}.self_attn.{o}"] = (DIM, DIM)
        for o in (*ATTN, "k_img", "v_img"):
            shapes[f"blocks.{i}.cross_attn.{o}"] = (DIM, DIM)
        shapes[f"blocks.{i}.ffn.0"] = (DIM, FFN)
        shapes[f"blocks.{i}.ffn.2"] = (FFN, DIM)
    return shapes


def comfy_distill(seed: int = 0, rank: int = 4, blocks: int = BLOCKS, scale: float = 0.05) -> dict:
    import torch
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * scale
    sd = {}
    top = {"head.head": (DIM, OUT), "img_emb.proj.1": (IMAGE, IMAGE), "img_emb.proj.3": (IMAGE, DIM),
           "text_embedding.0": (TEXT, DIM), "text_embedding.2": (DIM, DIM), "time_embedding.0": (FREQ, DIM),
           "time_embedding.2": (DIM, DIM), "time_projection.1": (DIM, 6 * DIM)}
    for name, (i, o) in {**_linear_shapes(blocks), **top}.items():
        sd[f"diffusion_model.{name}.lora_down.weight"] = r(rank, i)
        sd[f"diffusion_model.{name}.lora_up.weight"] = r(o, rank)
        sd[f"diffusion_model.{name}.diff_b"] = r(o)
    for i in range(blocks):
        for norm in ("self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k",
                     "cross_attn.norm_k_img", "norm3"):
            sd[f"diffusion_model.blocks.{i}.{norm}.diff"] = r(DIM)
        sd[f"diffusion_model.blocks.{i}.norm3.diff_b"] = r(DIM)
        sd[f"diffusion_model.blocks.{i}.diff_m"] = r(1, 6, DIM)
    sd["diffusion_model.img_emb.proj.0.diff"] = r(IMAGE)
    sd["diffusion_model.img_emb.proj.0.diff_b"] = r(IMAGE)
    return sd


def lightx2v_distill(seed: int = 1, rank: int = 4, blocks: int = BLOCKS) -> dict:
    import torch
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (i, o) in _linear_shapes(blocks).items():
        sd[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(rank, i, generator=g) * 0.05
        sd[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(o, rank, generator=g) * 0.05
        sd[f"diffusion_model.{name}.alpha"] = torch.tensor(float(rank))
    return sd


def wan_relight(seed: int = 2, rank: int = 4) -> dict:
    """The peft state dict (what ``relighting_lora.ckpt`` holds under "state_dict")."""
    import torch
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (i, o) in _linear_shapes().items():
        sd[f"{name}.lora_A.weight"] = torch.randn(rank, i, generator=g) * 0.05
        sd[f"{name}.lora_B.weight"] = torch.randn(o, rank, generator=g) * 0.05
    return sd


def same_weights_in_comfy_names(peft: dict) -> dict:
    """``wan_relight``'s tensors under ComfyUI's names (``diffusion_model.``, lora_down/lora_up)."""
    return {"diffusion_model." + k.replace(".lora_A.", ".lora_down.").replace(".lora_B.", ".lora_up."): v
            for k, v in peft.items()}


def save(state: dict, path, *, ckpt: bool = False):
    if ckpt:
        import torch
        torch.save({"state_dict": state, "epoch": 3}, str(path))
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)
