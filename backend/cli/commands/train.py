"""``inhabit train``: train Animate Anyone 2 on a dataset made by ``inhabit dataset make``.

The same command runs on one CPU, one GPU, or under ``accelerate launch``
(many GPUs, many nodes; gloo on CPUs). Stage 1 trains ReferenceNet, the
denoising UNet's spatial layers, pose guider, depth modulation and object
guider; stage 2 the motion modules only. Checkpoints are pipeline folders
(OUT/checkpoints/step_N, OUT/last) that ``inhabit serve --engine aa2
--weights OUT/last`` loads as they are; OUT/loss.jsonl and OUT/loss.png hold
the loss curve. Exit codes: 0 done, 1 failed, 2 bad input, 130 cancelled.
"""
from __future__ import annotations

import signal
import sys


def add_parser(subparsers):
    p = subparsers.add_parser("train", help="train the aa2 engine on a rendered dataset", description=__doc__)
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (inhabit dataset make)")
    p.add_argument("--config", default="tiny", help="model size: tiny or small (from scratch) or sd15 (needs --init)")
    p.add_argument("--init", metavar="DIR", help="start from this AA2 pipeline folder (e.g. converted Moore weights)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoints, loss log, loss curve")
    p.add_argument("--steps", type=int, required=True, help="train until this global step")
    p.add_argument("--stage", type=int, default=1,
                   help="0: autoencoder (configs from scratch), 1: images, 2: motion modules (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, help="samples per process and step (default: the config's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the config's)")
    p.add_argument("--window", type=int, default=8, help="frames per sample in stage 2 (default %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N", help="steps between checkpoints")
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much training time")
    p.add_argument("--mixed-precision", default="auto", choices=("auto", "no", "fp16", "bf16"),
                   help="auto: bf16 on GPU, none on CPU")
    p.add_argument("--gradient-checkpointing", default="auto", choices=("auto", "on", "off"),
                   help="auto: on with a GPU")
    p.add_argument("--adam8bit", action="store_true", help="8-bit AdamW (needs bitsandbytes)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default %(default)s)")
    return p


def run(args) -> int:
    from backend.cli.progress import ProgressBar
    from backend.training.loop import TrainError, TrainOptions, check_options, train

    o = TrainOptions(data=args.data, out=args.out, config=args.config, steps=args.steps, stage=args.stage,
                     init=args.init, resume=args.resume, seed=args.seed, batch=args.batch, lr=args.lr,
                     window=args.window, checkpoint_every=max(1, args.checkpoint_every),
                     max_minutes=args.max_minutes, mixed_precision=args.mixed_precision,
                     gradient_checkpointing=args.gradient_checkpointing, adam8bit=args.adam8bit,
                     num_workers=args.num_workers)
    try:
        check_options(o)
    except TrainError as exc:
        print(f"inhabit train: {exc}", file=sys.stderr)
        return 2
    bar = ProgressBar()
    cancel = {"asked": False}

    def on_sigint(*_):
        cancel["asked"] = True

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        summary = train(o, progress=lambda s, n, loss, rate, eta: bar.update(
            "train", s, n, f"loss {loss:.4f}  {rate:.2f} it/s", eta), should_stop=lambda: cancel["asked"])
    except TrainError as exc:
        bar.close()
        print(f"inhabit train: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        bar.close()
        print(f"inhabit train: writing to {args.out!r} failed ({exc.strerror or exc}); the previous checkpoint "
              "is intact: free space and run again with --resume.", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, old)
    bar.close()
    if not summary["main"]:
        return 130 if cancel["asked"] else 0
    print(f"inhabit train: step {summary['steps']} (from {summary['start']}) in {summary['seconds']} s on "
          f"{summary['world']} process(es); mean loss of the last 20 steps {summary['loss_last20']}; "
          f"checkpoint {summary['checkpoint']}", file=sys.stderr)
    return 130 if cancel["asked"] else 0
