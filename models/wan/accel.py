"""Load-time speed options of the Wan-Animate transformer: attention kernel,
regional compilation, fp8 weights. Each is diffusers' or torchao's own
mechanism; each has a one-sentence check (``*_problem``) the server runs before
it listens, so a missing package or compiler is said at start, not in a job.

attention  diffusers' attention dispatcher (``set_attention_backend``):
           sdpa  torch's scaled_dot_product_attention (diffusers "native"), always there;
           flash flash-attn 3 (``flash_attn_interface``, diffusers "_flash_3") when installed,
                 else flash-attn 2 (``flash_attn``, "flash");
           sage  SageAttention (``sageattention``, diffusers "sage"): int8 QK. Users report it
                 hurts Wan-Animate's faces and hands (unverified here); LightX2V's Animate
                 configs use flash attention 3, its 4090 configs sage.
compile    ``compile_repeated_blocks``: torch.compile of the one repeated block class
           (``_repeated_blocks = ["WanTransformerBlock"]``), compiled once and reused by all 40,
           dynamic shapes so other resolutions do not recompile; a warm-up forward at load
           pays the compile there, not in the first job.
fp8        torchao's float8 weight-only quantisation of the blocks' Linear layers when torchao is
           installed on a CUDA machine (weights stored e4m3 with a per-channel scale, matmuls in
           bf16); otherwise diffusers' layerwise casting (e4m3 storage, upcast per layer).
"""
from __future__ import annotations

import importlib.util

ATTENTION = ("sdpa", "flash", "sage")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def attention_backend(choice: str) -> str:
    """diffusers' backend name for ``choice``."""
    if choice == "flash":
        return "_flash_3" if _installed("flash_attn_interface") else "flash"
    return {"sdpa": "native", "sage": "sage"}[choice]


def attention_problem(choice: str, device: str) -> str | None:
    if choice == "sdpa":
        return None
    if choice not in ATTENTION:
        return f"--engine-option attention must be one of {list(ATTENTION)}, got {choice!r}"
    if not str(device).startswith("cuda"):
        return f"--engine-option attention={choice} needs a CUDA GPU; on {device} use attention=sdpa"
    if choice == "sage" and not _installed("sageattention"):
        return ("--engine-option attention=sage needs the sageattention package, which this server lacks: "
                "pip install sageattention, or use attention=sdpa")
    if choice == "flash" and not (_installed("flash_attn_interface") or _installed("flash_attn")):
        return ("--engine-option attention=flash needs flash-attn (2 or 3), which this server lacks: "
                "pip install flash-attn, or use attention=sdpa")
    return None


def compile_problem(device: str) -> str | None:
    """None when torch.compile (inductor) builds and runs a kernel on ``device``, else one sentence."""
    import torch
    try:
        fn = torch.compile(lambda x: torch.nn.functional.gelu(x) * 2 + 1, backend="inductor", dynamic=False)
        fn(torch.ones(8, device=device))
    except Exception as exc:  # noqa: BLE001 -- any failure means no working compiler, said in one sentence
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return (f"--engine-option compile=on needs a working torch.compile on {device} (inductor with a C compiler, "
                f"and triton on CUDA), which failed here ({reason}): install them or leave compile off")
    return None


def fp8_method(device: str) -> str:
    """'torchao' where torchao is installed and the device is CUDA, else 'layerwise'."""
    return "torchao" if str(device).startswith("cuda") and _installed("torchao") else "layerwise"


def apply_fp8(transformer, method: str) -> None:
    import torch
    if method == "torchao":
        from torchao.quantization import Float8WeightOnlyConfig, quantize_

        def blocks_linear(module, fqn: str) -> bool:   # the 40 blocks' projections; LoRA matrices stay bf16
            return isinstance(module, torch.nn.Linear) and fqn.startswith("blocks.") and "lora_" not in fqn
        quantize_(transformer, Float8WeightOnlyConfig(), filter_fn=blocks_linear)
    else:
        from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN
        # Compute in the dtype the model runs in (bf16 on CUDA; fp32 for the tiny model on a CPU); LoRA
        # matrices already loaded keep their precision (small values, e4m3 would flush them).
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=transformer.dtype,
                                             skip_modules_pattern=(*DEFAULT_SKIP_MODULES_PATTERN, "lora_"))


def image_tokens(pipe) -> int:
    """CLIP tokens per reference image (257 for ViT-H/14 at 224 px): the cross-attention splits on it."""
    cfg = pipe.image_encoder.config
    return (int(cfg.image_size) // int(cfg.patch_size)) ** 2 + 1


def compile_blocks(transformer, device: str, image_tokens: int = 257) -> float:
    """Regional compilation and one warm-up forward; returns the seconds it took (the cold compile)."""
    import time
    t0 = time.perf_counter()
    transformer.compile_repeated_blocks(dynamic=True)
    warm_up(transformer, device, image_tokens)
    return time.perf_counter() - t0


def warm_up(transformer, device: str, image_tokens: int = 257) -> None:
    """One forward on a small dummy segment (2 latent frames + the reference, 16x16 latents) with the
    job's token counts (512 text, ``image_tokens`` image; the attention splits on them, so other counts
    would compile again), so the compiled blocks are built at load."""
    from .prompts import MAX_SEQUENCE_LENGTH
    import torch
    cfg = transformer.config
    dtype = transformer.dtype
    latent = int(cfg.latent_channels)
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device, dtype)
    with torch.no_grad():
        transformer(hidden_states=rand(1, int(cfg.in_channels), 3, 16, 16),
                    timestep=torch.tensor([999.0], device=device),
                    encoder_hidden_states=rand(1, MAX_SEQUENCE_LENGTH, int(cfg.text_dim)),
                    encoder_hidden_states_image=rand(1, image_tokens, int(cfg.image_dim)),
                    pose_hidden_states=rand(1, latent, 2, 16, 16),
                    face_pixel_values=rand(1, 3, 5, int(cfg.motion_encoder_size), int(cfg.motion_encoder_size)),
                    return_dict=False)
