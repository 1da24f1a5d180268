"""``inhabit doctor``: is this machine ready to run the aa2 engine?

Reports torch / CUDA / VRAM, checks a weights folder if given, and runs a smoke
generation with the tiny random-initialised pipeline (the same classes as the
real one), printing seconds per frame. ``--save-tiny DIR`` also writes that
tiny pipeline as a folder ``inhabit serve --engine aa2 --weights DIR`` loads.
"""
from __future__ import annotations

import sys
import time


def add_parser(subparsers):
    p = subparsers.add_parser("doctor", help="check torch/CUDA, a weights folder, and run a smoke generation",
                              description=__doc__)
    p.add_argument("--weights", metavar="DIR", help="pipeline folder to check")
    p.add_argument("--save-tiny", metavar="DIR", help="also write the tiny pipeline to DIR")
    p.add_argument("--frames", type=int, default=4, help="frames in the smoke run (default %(default)s)")
    p.add_argument("--steps", type=int, default=2, help="denoising steps in the smoke run (default %(default)s)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--engine", default="aa2", choices=("aa2", "wan-animate"),
                   help="which engine's model to check (default %(default)s)")
    return p


def run(args) -> int:
    status = 0
    try:
        import torch
        import diffusers
        import transformers
    except Exception as exc:  # noqa: BLE001 -- report, do not crash
        print(f"FAIL cannot import the diffusion stack: {type(exc).__name__}: {exc}")
        return 1
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}")
    cuda = torch.cuda.is_available()
    if cuda:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            print(f"cuda:{i} {props.name}, {props.total_memory / 2**30:.1f} GiB VRAM")
    else:
        print("CUDA: not available (CPU only; full-size generation needs a GPU)")
    device = "cuda" if (args.device == "cuda" or (args.device == "auto" and cuda)) else "cpu"
    if args.device == "cuda" and not cuda:
        print("FAIL --device cuda but torch sees no GPU")
        return 1

    if args.engine == "wan-animate":
        from backend.cli.commands.doctor_wan import run_wan
        status = run_wan(args, torch, device)
        sys.stdout.flush()
        return status

    if args.weights:
        from models.aa2.weights_check import check_folder
        ok, lines = check_folder(args.weights)
        print(f"weights {args.weights}:")
        for line in lines:
            print(f"  {line}")
        status |= 0 if ok else 1

    from models.aa2.tiny import tiny_inputs, tiny_pipeline
    pipe = tiny_pipeline(device=device)
    pipe.set_progress_bar_config(disable=True)
    inputs = tiny_inputs(max(1, args.frames), 64, 64)
    ref = inputs.pop("reference")
    t0 = time.perf_counter()
    out = pipe(ref, **inputs, steps=max(1, args.steps), guidance=2.0, context_frames=min(16, args.frames),
               overlap=0)
    dt = time.perf_counter() - t0
    n = out.frames.shape[0]
    print(f"smoke generation ({device}, tiny config, {n} frames 64x64, {args.steps} steps): "
          f"{dt / n:.3f} s/frame")
    if args.save_tiny:
        pipe.save_pretrained(args.save_tiny, safe_serialization=True)
        print(f"tiny pipeline written to {args.save_tiny} "
              f"(serve it: inhabit serve --engine aa2 --weights {args.save_tiny})")
    print("doctor: OK" if status == 0 else "doctor: problems found")
    sys.stdout.flush()
    return status
