"""The wan-animate engine's doctor hooks: the memory tier it would pick on this
machine and why, and a smoke generation with the tiny configuration (which
``save_to`` writes as a folder the server loads). Imported by `inhabit doctor`
only, through the engine's ``machine_report`` and ``smoke_test``."""
from __future__ import annotations

import time

# The real model, for the tier report when no folder is given (Wan2.2-Animate-14B-Diffusers).
REAL_TRANSFORMER_PARAMS = 17.3e9
REAL_OTHER_PARAMS = 0.127e9 + 0.632e9     # VAE + CLIP ViT-H
REAL_INNER_DIM = 40 * 128


def machine_report(device: str, weights: str | None) -> list[str]:
    from models.wan import memory as M

    free = M.free_vram(device if device != "cuda" else "cuda:0")
    facts = None
    if weights:
        from models.wan.weights_check import check_wan_folder
        ok, _, facts = check_wan_folder(weights)
        facts = facts if ok else None
    lines = [f"free VRAM: {'none (no CUDA)' if free is None else f'{free / 1e9:.1f} GB'}"]
    for h, w in ((480, 832), (720, 1280)):
        if facts and facts["tensors"].get("transformer"):
            from models.wan.loading import needs_for
            needs = needs_for(facts, facts["configs"]["transformer"], h, w, 77)
        else:
            needs = M.estimate(int(REAL_TRANSFORMER_PARAMS), int(REAL_OTHER_PARAMS), REAL_INNER_DIM, h, w, 77)
        tier, why = M.choose_tier(free, needs)
        lines.append(f"memory tier at {w}x{h}, 77-frame segments: {tier} ({why})")
    return lines


def smoke_test(device: str, *, frames: int, steps: int, save_to: str | None = None) -> str:
    import numpy as np
    import torch

    from models.wan.generate import SegmentInputs, ShotGenerator
    from models.wan.inputs import black_out, generation_mask
    from models.wan.segments import plan_segments
    from models.wan.tiny import TINY_FACE, TINY_TEXT_DIM, save_tiny, tiny_pipeline

    pipe = tiny_pipeline().to(device)
    n, size = max(1, frames), 64
    env = np.full((size, size, 3), 120, np.uint8)
    matte = np.zeros((size, size), np.uint8)
    matte[16:56, 24:40] = 255
    mask = generation_mask(matte)
    seg = plan_segments(n, 77, 5)[0]
    inputs = SegmentInputs(pose=[np.zeros((size, size, 3), np.uint8)] * n,
                           face=[np.zeros((TINY_FACE, TINY_FACE, 3), np.uint8)] * n,
                           background=[black_out(env, mask)] * n, mask=[mask] * n, environment=[env] * n)
    gen = ShotGenerator(pipe, height=size, width=size, steps=max(1, steps), guidance=1.0, seed=0,
                        prompt_embeds=torch.zeros(1, 16, TINY_TEXT_DIM))
    gen.set_reference(np.full((size, size, 3), 200, np.uint8))
    t0 = time.perf_counter()
    out = gen.segment(seg, inputs)
    dt = time.perf_counter() - t0
    if save_to:
        save_tiny(save_to)
    return (f"smoke generation ({device}, tiny wan-animate config, {len(out)} frames {size}x{size}, "
            f"{steps} steps): {dt / len(out):.3f} s/frame")
