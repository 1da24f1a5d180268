"""Memory tiers for Wan-Animate, each one of diffusers' own mechanisms, and
the choice among them from free VRAM.

  full           every component on the GPU (fastest)
  model-offload  ``enable_model_cpu_offload``: one component on the GPU at a time
  group-offload  ``enable_group_offload`` (leaf level, CUDA streams prefetching the
                 next layer while this one runs) + VAE tiling: weights live in CPU RAM
  sequential     ``enable_sequential_cpu_offload`` + VAE tiling: the floor (~5.5 GB at 480p,
                 measured on a 5090 by others), slowest

Optional fp8 storage (``enable_layerwise_casting``, bf16 compute) halves the
transformer's resident and transferred bytes on any tier (the engine option fp8).

The sizes are projections from the published figures in
shared/spec/wan-animate.md (bf16 transformer 34.6 GB; activations about 12 GB
for a 77-frame 832x480 segment, 32,760 tokens of width 5120), scaled by the
folder's actual parameter count and the job's token count, so the tiny model
and the real one go through the same arithmetic.
"""
from __future__ import annotations

TIERS = ("full", "model-offload", "group-offload", "sequential")
CHOICES = ("auto",) + TIERS
GB = 1e9
# 12 GB of activations for 32,760 tokens x 5120 wide (480p, 77 frames, 40x128 heads).
_ACT_BYTES_PER_TOKEN_DIM = 12e9 / (32760 * 5120)
_MARGIN = 2 * GB


def segment_tokens(height: int, width: int, segment_length: int, patch: int = 2) -> int:
    latent_frames = (segment_length - 1) // 4 + 1 + 1      # + the reference frame
    return latent_frames * (height // 8 // patch) * (width // 8 // patch)


def estimate(transformer_params: int, other_params: int, inner_dim: int, height: int, width: int,
             segment_length: int, *, fp8: bool = False) -> dict:
    """Bytes each tier needs on the GPU (projections; see the module doc)."""
    tbytes = transformer_params * (1 if fp8 else 2)
    others = other_params * 4              # VAE fp32; CLIP counted the same (bf16 would be half)
    act = _ACT_BYTES_PER_TOKEN_DIM * segment_tokens(height, width, segment_length) * inner_dim
    return {"full": tbytes + others + act + _MARGIN,
            "model-offload": tbytes + act + _MARGIN,
            # Two of the 40 blocks resident: the running one and the one the stream prefetches.
            "group-offload": act + tbytes * 2 / 40 + _MARGIN,
            # One layer at a time; others measured 5.5 GB at 480p with this tier (spec section 4),
            # well under our activation estimate, so it is taken at half.
            "sequential": act * 0.5 + _MARGIN}


def choose_tier(free_bytes: float | None, needs: dict) -> tuple[str, str]:
    """(tier, reason). ``free_bytes`` None means no CUDA: everything stays on the CPU."""
    if free_bytes is None:
        return "full", "no CUDA device: every component on the CPU (tiny configurations only)"
    for tier in TIERS:
        if free_bytes >= needs[tier]:
            return tier, (f"{free_bytes / GB:.1f} GB free >= {needs[tier] / GB:.1f} GB that '{tier}' needs "
                          f"at this resolution and segment length")
    return "sequential", (f"{free_bytes / GB:.1f} GB free is under every tier's estimate; 'sequential' "
                          f"({needs['sequential'] / GB:.1f} GB) is the floor: lower the resolution")


def free_vram(device: str) -> float | None:
    import torch
    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return float(free)


def apply_tier(pipe, tier: str, device: str, *, fp8: bool = False) -> None:
    import torch
    if fp8:
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
    if tier == "full" or not str(device).startswith("cuda"):
        pipe.to(device)
    elif tier == "model-offload":
        pipe.enable_model_cpu_offload(device=device)
    elif tier == "group-offload":
        pipe.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                  offload_type="leaf_level", use_stream=True)
        pipe.vae.enable_tiling()
    elif tier == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
        pipe.vae.enable_tiling()
    else:
        raise ValueError(f"memory tier must be one of {CHOICES}, got {tier!r}")
