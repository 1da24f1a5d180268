"""``inhabit eval``: score engines on held-out clips through a real server.

Each ``--engine NAME`` (optionally followed by its ``--weights DIR`` and
``--label TEXT``) runs in its own private ``inhabit serve``; every clip of
``--split`` goes through it as a shot and is scored against the clip's ground
truth: SSIM and PSNR (DisCo conventions), PSNR inside and outside the exact
silhouette, and occlusion correctness; LPIPS with ``--lpips-weights PATH``
and FVD with ``--i3d PATH`` (local files only, never downloaded; see
docs/evaluation.md). ``--baseline`` adds the naive
paste-the-reference baseline. Writes OUT/eval.md, OUT/eval.json and a
contact sheet per engine. Exit codes: 0 done, 1 failed, 2 bad input.
"""
from __future__ import annotations

import argparse
import os
import sys


class _EngineAction(argparse.Action):
    """--engine starts an entry; --weights/--label fill in the latest one."""

    def __call__(self, parser, namespace, value, option_string=None):
        entries = getattr(namespace, "entries", None) or []
        if option_string == "--engine":
            entries.append({"engine": value})
        elif not entries:
            parser.error(f"{option_string} must follow the --engine it belongs to")
        else:
            key = option_string.lstrip("-")
            if key in entries[-1]:
                parser.error(f"{option_string} given twice for --engine {entries[-1]['engine']}: "
                             "repeat --engine for another entry")
            entries[-1][key] = value
        namespace.entries = entries


def add_parser(subparsers):
    p = subparsers.add_parser("eval", help="score engines against ground truth on held-out clips",
                              description=__doc__)
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (inhabit dataset make)")
    p.add_argument("--split", default="test", help="split to score (default %(default)s)")
    p.add_argument("--engine", action=_EngineAction, dest="entries", metavar="NAME", help="engine to score "
                   "(repeatable)")
    p.add_argument("--weights", action=_EngineAction, dest="entries", metavar="DIR",
                   help="weights folder of the preceding --engine")
    p.add_argument("--label", action=_EngineAction, dest="entries", metavar="TEXT",
                   help="row name of the preceding --engine")
    p.add_argument("--baseline", action="store_true", help="also score the naive baseline")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for eval.md, eval.json, contact sheets")
    p.add_argument("--max-clips", type=int, help="score at most this many clips of the split")
    p.add_argument("--steps", type=int, default=10, help="aa2 denoising steps (default %(default)s)")
    p.add_argument("--guidance", type=float, default=2.0, help="aa2 guidance scale (default %(default)s)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds without news from a job before "
                                                                "it counts as lost (default %(default)s)")
    p.add_argument("--cluster", metavar="ADDRESS|local",
                   help="run each engine's clips on a Ray cluster's GPU slots, one clip per slot at once "
                        "(pip install 'inhabit[cluster]'; docs/farm.md)")
    p.add_argument("--cluster-resource", default="GPU", metavar="NAME",
                   help="with --cluster: the Ray resource naming a GPU slot (default %(default)s)")
    p.add_argument("--lpips-weights", metavar="PATH", help="LPIPS-alex weights: one file (inhabit weights "
                   "lpips-pack) or a folder with torchvision's alexnet .pth and lpips' alex.pth; adds LPIPS")
    p.add_argument("--i3d", metavar="PATH", help="I3D state dict (pytorch-i3d rgb_imagenet.pt layout); adds FVD")
    p.add_argument("--i3d-size", type=int, default=224, help="frame size fed to I3D (default %(default)s, as the "
                                                               "FVD reference code)")
    p.add_argument("--fvd-features", choices=("pool", "logits"), default="logits",
                   help="I3D feature FVD compares: the 400 Kinetics logits, as the TF reference and StyleGAN-V "
                        "(comparable with published FVD), or pooled Mixed_5c (1024) (default %(default)s)")
    return p


def check_args(args) -> str | None:
    from backend.training.data import layout
    from backend.server.engines import registry
    entries = args.entries or []
    if not entries and not args.baseline:
        return "nothing to score: pass --engine NAME (repeatable) and/or --baseline."
    names = registry.names()
    for e in entries:
        if e["engine"] not in names:
            return f"--engine {e['engine']!r} is unknown: choose one of {', '.join(names)}."
        if e["engine"] == "aa2" and not e.get("weights"):
            return "--engine aa2 needs its weights: follow it with --weights DIR (e.g. OUT/last of inhabit train)."
        if e.get("weights") and not os.path.isdir(e["weights"]):
            return f"--weights {e['weights']!r} does not exist: pass the folder of the engine's weights."
    if args.max_clips is not None and args.max_clips < 1:
        return f"--max-clips must be at least 1, got {args.max_clips}."
    for flag, path in (("--lpips-weights", args.lpips_weights), ("--i3d", args.i3d)):
        if path and not os.path.exists(path):
            return f"{flag} {path!r} does not exist: pass a local weight file (nothing is downloaded)."
    if args.i3d_size < 32:
        return f"--i3d-size must be at least 32, got {args.i3d_size}."
    if args.steps < 1:
        return f"--steps must be at least 1, got {args.steps}."
    try:
        layout.split_indices(args.data, layout.read_manifest(args.data), args.split)
    except layout.DatasetError as exc:
        return str(exc)
    return None


def run(args) -> int:
    problem = check_args(args)
    if not problem and args.cluster:
        from backend.server.cluster.ray_import import ClusterError, ray
        try:
            ray()
        except ClusterError as exc:
            problem = str(exc)
    if problem:
        print(f"inhabit eval: {problem}", file=sys.stderr)
        return 2
    from backend.cli.progress import ProgressBar
    from backend.training.data import layout
    from backend.training.evaluation.run import EngineEntry, evaluate, markdown_table

    frames = layout.read_manifest(args.data)["frames"]
    entries = []
    for e in args.entries or []:
        params = {}
        if e["engine"] == "aa2":
            ctx = min(frames, 16)
            params = {"steps": args.steps, "guidance": args.guidance, "context_frames": ctx,
                      "overlap": min(4, ctx - 1), "seed": 0}
        entries.append(EngineEntry(e["engine"], e.get("weights"), e.get("label"), params))
    learned = None
    if args.lpips_weights or args.i3d:
        from backend.training.evaluation.learned import LearnedScores
        from backend.training.metrics.state_dicts import MetricWeightsError
        try:
            learned = LearnedScores(args.lpips_weights, args.i3d, i3d_size=args.i3d_size,
                                    fvd_features=args.fvd_features)
        except MetricWeightsError as exc:
            print(f"inhabit eval: {exc}", file=sys.stderr)
            return 2
    bar = ProgressBar()
    try:
        report = evaluate(args.data, args.split, entries, args.out, baseline=args.baseline,
                          max_clips=args.max_clips, timeout=args.timeout, learned=learned,
                          cluster=(args.cluster, args.cluster_resource) if args.cluster else None,
                          progress=lambda d, n, what: bar.update("eval", d, n, what))
    except Exception as exc:  # a failed job or server: say which, keep what was written
        bar.close()
        print(f"inhabit eval: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    bar.close()
    print(markdown_table(report))
    print(f"\ninhabit eval: wrote {os.path.join(args.out, 'eval.md')} and eval.json", file=sys.stderr)
    return 0
