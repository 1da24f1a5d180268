"""``inhabit doctor``: is this machine ready to run an engine?

Reports torch / CUDA / VRAM, what the engine says of this machine, checks a
weights folder if given, and runs the engine's smoke generation with its tiny
random-initialised model (the same classes as the real one), printing seconds
per frame. ``--save-tiny DIR`` also writes that tiny model as a folder
``inhabit serve --engine NAME --weights DIR`` loads. Everything engine-specific
comes from the engine's hooks (``Engine.weights_report``, ``machine_report``,
``smoke_test``).
"""
from __future__ import annotations

import sys


def add_parser(subparsers):
    from backend.server.engines import registry
    p = subparsers.add_parser("doctor", help="check torch/CUDA, a weights folder, and run a smoke generation",
                              description=__doc__)
    p.add_argument("--weights", metavar="DIR", help="weights folder to check")
    p.add_argument("--save-tiny", metavar="DIR", help="also write the tiny model to DIR")
    p.add_argument("--frames", type=int, default=4, help="frames in the smoke run (default %(default)s)")
    p.add_argument("--steps", type=int, default=2, help="denoising steps in the smoke run (default %(default)s)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--engine", default="aa2", metavar="NAME",
                   help=f"which engine to check: {', '.join(registry.names())} or package.module:Class "
                        "(default %(default)s)")
    return p


def run(args) -> int:
    from backend.server.engines import registry
    for name, value in (("--frames", args.frames), ("--steps", args.steps)):
        if value < 1:
            print(f"inhabit doctor: {name} must be at least 1, got {value}.", file=sys.stderr)
            return 2
    try:
        cls = registry.load_spec(args.engine)
    except registry.EngineNotFound as exc:
        print(f"inhabit doctor: --engine: {exc}.", file=sys.stderr)
        return 2
    if args.save_tiny and not cls.needs_weights:
        print(f"inhabit doctor: --save-tiny: engine {cls.name!r} has no model to save; give an engine with weights "
              f"({', '.join(n for n in registry.names() if registry.get(n).needs_weights)}).", file=sys.stderr)
        return 2
    try:
        import diffusers
        import torch
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
    if args.device == "cuda" and not cuda:
        print("FAIL --device cuda but torch sees no GPU")
        return 1
    device = "cuda" if (args.device == "cuda" or (args.device == "auto" and cuda)) else "cpu"

    status = 0
    if args.weights:
        ok, lines = cls.weights_report(args.weights)
        print(f"weights {args.weights}:")
        for line in lines or ["ok"]:
            print(f"  {line}")
        status |= 0 if ok else 1
    for line in cls.machine_report(device, args.weights):
        print(line)
    print(cls.smoke_test(device, frames=args.frames, steps=args.steps, save_to=args.save_tiny))
    if args.save_tiny and cls.needs_weights:
        print(f"tiny model written to {args.save_tiny} "
              f"(serve it: inhabit serve --engine {cls.name} --weights {args.save_tiny})")
    print("doctor: OK" if status == 0 else "doctor: problems found")
    sys.stdout.flush()
    return status
