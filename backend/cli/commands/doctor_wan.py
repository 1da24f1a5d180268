"""``inhabit doctor --engine wan-animate``: GPU, free VRAM, the memory tier the
engine would pick and why, a weights-folder check, and a smoke generation with
the tiny configuration (``--save-tiny DIR`` writes it as a folder the server loads)."""
from __future__ import annotations

import time

# The real model, for the tier report when no folder is given (Wan2.2-Animate-14B-Diffusers).
REAL_TRANSFORMER_PARAMS = 17.3e9
REAL_OTHER_PARAMS = 0.127e9 + 0.632e9     # VAE + CLIP ViT-H
REAL_INNER_DIM = 40 * 128


def run_wan(args, torch, device: str) -> int:
    from models.wan import memory as M

    status = 0
    free = M.free_vram(device if device != "cuda" else "cuda:0")
    facts = None
    if args.weights:
        from models.wan.weights_check import check_wan_folder
        ok, lines, facts = check_wan_folder(args.weights)
        print(f"weights {args.weights}:")
        for line in lines:
            print(f"  {line}")
        status |= 0 if ok else 1
    print(f"free VRAM: {'none (no CUDA)' if free is None else f'{free / 1e9:.1f} GB'}")
    for h, w in ((480, 832), (720, 1280)):
        if facts and facts["tensors"].get("transformer"):
            from models.wan.loading import needs_for
            needs = needs_for(facts, facts["configs"]["transformer"], h, w, 77)
        else:
            needs = M.estimate(int(REAL_TRANSFORMER_PARAMS), int(REAL_OTHER_PARAMS), REAL_INNER_DIM, h, w, 77)
        tier, why = M.choose_tier(free, needs)
        print(f"memory tier at {w}x{h}, 77-frame segments: {tier} ({why})")

    import numpy as np

    from models.wan.generate import SegmentInputs, ShotGenerator
    from models.wan.inputs import black_out, generation_mask
    from models.wan.segments import plan_segments
    from models.wan.tiny import TINY_FACE, TINY_TEXT_DIM, save_tiny, tiny_pipeline

    pipe = tiny_pipeline().to(device)
    n, size = max(1, args.frames), 64
    env = np.full((size, size, 3), 120, np.uint8)
    matte = np.zeros((size, size), np.uint8)
    matte[16:56, 24:40] = 255
    mask = generation_mask(matte)
    seg = plan_segments(n, 77, 5)[0]
    frames = SegmentInputs(pose=[np.zeros((size, size, 3), np.uint8)] * n,
                           face=[np.zeros((TINY_FACE, TINY_FACE, 3), np.uint8)] * n,
                           background=[black_out(env, mask)] * n, mask=[mask] * n, environment=[env] * n)
    gen = ShotGenerator(pipe, height=size, width=size, steps=max(1, args.steps), guidance=1.0, seed=0,
                        prompt_embeds=torch.zeros(1, 16, TINY_TEXT_DIM))
    gen.set_reference(np.full((size, size, 3), 200, np.uint8))
    t0 = time.perf_counter()
    out = gen.segment(seg, frames)
    dt = time.perf_counter() - t0
    print(f"smoke generation ({device}, tiny wan-animate config, {len(out)} frames {size}x{size}, "
          f"{args.steps} steps): {dt / len(out):.3f} s/frame")
    if args.save_tiny:
        save_tiny(args.save_tiny)
        print(f"tiny pipeline written to {args.save_tiny} "
              f"(serve it: inhabit serve --engine wan-animate --weights {args.save_tiny})")
    print("doctor: OK" if status == 0 else "doctor: problems found")
    return status
