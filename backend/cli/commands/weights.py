"""``inhabit weights``: build and check weights folders (local paths only).

  inhabit weights convert --moore DIR --sd15 DIR --vae DIR --image-encoder DIR
                          [--motion-module FILE] --out DIR
  inhabit weights check DIR          (a folder of any engine with weights, checked by that engine)
  inhabit weights resave-bf16 SRC DST  (Wan-Animate: fp32 transformer -> bf16, 82 -> ~48 GB)
  inhabit weights lpips-pack --alexnet FILE --lpips FILE --out FILE.safetensors
                                       (one LPIPS-alex file for inhabit eval --lpips-weights)
"""
from __future__ import annotations


def add_parser(subparsers):
    p = subparsers.add_parser("weights", help="convert Moore-AnimateAnyone weights / check a pipeline folder",
                              description=__doc__)
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    c = sub.add_parser("convert", help="assemble a pipeline folder from Moore-AnimateAnyone + SD-1.5 parts")
    c.add_argument("--moore", required=True, metavar="DIR",
                   help="folder with denoising_unet.pth, reference_unet.pth, pose_guider.pth[, motion_module.pth]")
    c.add_argument("--sd15", required=True, metavar="DIR", help="SD-1.5 folder (its unet/config.json is used)")
    c.add_argument("--vae", required=True, metavar="DIR", help="sd-vae-ft-mse folder")
    c.add_argument("--image-encoder", required=True, metavar="DIR", help="sd-image-variations image_encoder folder")
    c.add_argument("--motion-module", metavar="FILE", help="motion_module.pth (default: the one in --moore)")
    c.add_argument("--fusion", default="all", choices=("all", "mid_up"),
                   help="reference fusion blocks (Moore was trained with all; default %(default)s)")
    c.add_argument("--motion-heads", type=int, metavar="N",
                   help="attention heads of the motion modules (default: from the checkpoint's config, else "
                        "AnimateDiff's 8)")
    c.add_argument("--out", required=True, metavar="DIR",
                   help="output pipeline folder (written only when the conversion succeeds)")
    k = sub.add_parser("check", help="validate a pipeline folder")
    k.add_argument("dir", metavar="DIR")
    r = sub.add_parser("resave-bf16", help="copy a Wan-Animate folder with its fp32 transformer stored as bf16")
    r.add_argument("src", metavar="SRC")
    r.add_argument("dst", metavar="DST")
    lp = sub.add_parser("lpips-pack", help="merge torchvision's alexnet .pth and lpips' alex.pth into one file")
    lp.add_argument("--alexnet", required=True, metavar="FILE", help="torchvision alexnet-owt-7be5be79.pth")
    lp.add_argument("--lpips", required=True, metavar="FILE", help="lpips' weights/v0.1/alex.pth")
    lp.add_argument("--out", required=True, metavar="FILE", help="output .safetensors file")
    return p


def run(args) -> int:
    if args.weights_command == "lpips-pack":
        from backend.training.metrics.lpips import pack
        from backend.training.metrics.state_dicts import MetricWeightsError
        if not args.out.endswith(".safetensors"):
            print(f"inhabit weights lpips-pack: --out {args.out!r} must end in .safetensors.")
            return 2
        try:
            merged = pack(args.alexnet, args.lpips, args.out)
        except MetricWeightsError as exc:
            print(f"inhabit weights lpips-pack: {exc}")
            return 2
        print(f"inhabit weights lpips-pack: wrote {args.out} ({len(merged)} tensors)")
        return 0
    if args.weights_command == "check":
        return _check(args.dir)
    if args.weights_command == "convert":
        from models.aa2.moore_folder import ConversionFailed, convert_to_folder
        try:
            report = convert_to_folder(moore_dir=args.moore, sd15_dir=args.sd15, vae_dir=args.vae,
                                       image_encoder_dir=args.image_encoder, out=args.out,
                                       motion_module=args.motion_module, fusion_mode=args.fusion,
                                       motion_heads=args.motion_heads)
        except ConversionFailed as exc:
            if exc.report is not None:
                print(exc.report.text())
            print(f"inhabit weights convert: {exc}")
            return 1
        except (FileNotFoundError, ValueError) as exc:
            print(f"inhabit weights convert: {exc}")
            return 1
        print(report.text())
        print(f"written: {args.out}")
        return 0 if report.ok else 1
    if args.weights_command == "resave-bf16":
        from models.wan.loading import WeightsFolderError
        from models.wan.resave import resave_bf16
        try:
            r = resave_bf16(args.src, args.dst, on_file=lambda f: print(f"  {f}", flush=True))
        except (WeightsFolderError, ValueError) as exc:
            print(f"inhabit weights resave-bf16: {exc}")
            return 2
        from models.wan.weights_check import human_size
        print(f"written: {args.dst}: {human_size(r['before'])} -> {human_size(r['after'])} "
              f"({r['converted']} tensors now bf16)")
        return 0
    print("inhabit weights: give an action: convert, check, resave-bf16 or lpips-pack")
    return 2


def _check(folder: str) -> int:
    """Each engine with weights checks the folder through its own hook; the report
    shown is the accepting engine's, else the one with the fewest problems."""
    from backend.server.engines import registry
    reports = []
    for name in registry.names():
        cls = registry.get(name)
        if cls.needs_weights:
            ok, lines = cls.weights_report(folder)
            reports.append((not ok, sum(line.startswith("ERROR") for line in lines), name, lines))
    failed, _, name, lines = min(reports)
    print(f"engine {name}:" if not failed else f"not a weights folder of any engine; closest, engine {name}:")
    print("\n".join(lines))
    return 1 if failed else 0
