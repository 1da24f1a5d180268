"""``inhabit weights``: build and check aa2 pipeline folders (local paths only).

  inhabit weights convert --moore DIR --sd15 DIR --vae DIR --image-encoder DIR
                          [--motion-module FILE] --out DIR
  inhabit weights check DIR          (an aa2 or a Wan-Animate folder)
  inhabit weights resave-bf16 SRC DST  (Wan-Animate: fp32 transformer -> bf16, 82 -> ~48 GB)
  inhabit weights lpips-pack --alexnet FILE --lpips FILE --out FILE.safetensors
                                       (one LPIPS-alex file for inhabit eval --lpips-weights)
"""
from __future__ import annotations

import os


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
        from models.wan.weights_check import PIPELINE_CLASS, check_wan_folder, read_model_index
        from models.aa2.weights_check import check_folder
        index = read_model_index(args.dir) if os.path.isdir(args.dir) else None
        if index and index.get("_class_name") == PIPELINE_CLASS:
            ok, lines, _ = check_wan_folder(args.dir)
        else:
            ok, lines = check_folder(args.dir)
        print("\n".join(lines))
        return 0 if ok else 1
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
