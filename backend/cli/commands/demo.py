"""``inhabit demo``: the whole product on a machine with no GPU and no weights.

Builds a procedural scene in headless Blender, renders a reference of its
character, starts a private ``inhabit serve`` on a free loopback port, runs
the same job ``inhabit render`` runs, and writes to DIR: demo.mp4 (the
sequencer), demo.blend (with the strip), contact_sheet.png and metrics.json
(SSIM/PSNR against the real character rendered in the scene, for the engine
and for a naive paste-the-reference baseline).
Exit codes: 0 done, 1 failed, 2 bad input, 130 cancelled.
"""
from __future__ import annotations

import os
import signal
import sys

MAX_FRAMES = 1000
MIN_SIZE, MAX_SIZE = 64, 1024


def add_parser(subparsers):
    p = subparsers.add_parser("demo", help="run the end-to-end demo (scene, server, job, video, metrics)",
                              description=__doc__)
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (default %(default)s)")
    p.add_argument("--engine", default="preview", help="engine to run (default %(default)s; aa2 needs --weights)")
    p.add_argument("--weights", metavar="DIR", help="local weights folder for the aa2 engine")
    p.add_argument("--frames", type=int, default=48, help="frames in the shot (default %(default)s)")
    p.add_argument("--size", type=int, default=384, metavar="PX", help="square frame size, multiple of 8 "
                                                                       "(default %(default)s)")
    p.add_argument("--samples", type=int, default=4, help="Cycles samples per render (default %(default)s)")
    p.add_argument("--character", metavar="FILE", help="your rigged character (.glb, .gltf, .fbx or .blend) "
                                                       "instead of the procedural one")
    p.add_argument("--action", metavar="NAME", help="the character's action to play (default: its current one)")
    p.add_argument("--motion", metavar="FILE.bvh", help="drive the character with a BVH mocap file instead")
    return p


def check_args(args) -> str | None:
    """The first problem with the arguments as one sentence, or None. Cheap:
    runs before Blender or torch is imported."""
    from backend.server.engines import registry
    from blender_addon.core.settings import SetupError, validate_output_dir
    if args.frames < 1:
        return f"--frames must be at least 1, got {args.frames}."
    if args.frames > MAX_FRAMES:
        return f"--frames must be at most {MAX_FRAMES}, got {args.frames}: make a shorter demo."
    if not (MIN_SIZE <= args.size <= MAX_SIZE) or args.size % 8:
        return f"--size must be a multiple of 8 between {MIN_SIZE} and {MAX_SIZE}, got {args.size}."
    if args.engine == "wan-animate" and args.size % 16:
        return f"--size must be a multiple of 16 for the wan-animate engine, got {args.size}."
    if args.samples < 1:
        return f"--samples must be at least 1, got {args.samples}."
    engines = registry.names()
    if args.engine not in engines:
        return f"Unknown engine {args.engine!r}: choose one of {', '.join(engines)}."
    if args.engine == "aa2" and not args.weights:
        return "The aa2 engine needs its weights: pass --weights DIR (see `inhabit weights`), or use --engine preview."
    if args.engine == "wan-animate" and not args.weights:
        return ("The wan-animate engine needs its weights: pass --weights DIR (a Wan2.2-Animate-14B-Diffusers copy, "
                "or `inhabit doctor --engine wan-animate --save-tiny DIR`), or use --engine preview.")
    if args.weights and not os.path.isdir(args.weights):
        return f"Weights folder {args.weights!r} does not exist: pass the folder that holds the {args.engine} weights."
    character = getattr(args, "character", None)
    if character:
        if not character.lower().endswith((".glb", ".gltf", ".fbx", ".blend")):
            return f"--character {character!r} is not a .glb, .gltf, .fbx or .blend file: export the character as glTF."
        if not os.path.isfile(character):
            return f"--character file {character!r} does not exist: give the path of your rigged character."
    elif getattr(args, "action", None) or getattr(args, "motion", None):
        return "--action and --motion need --character FILE: they animate your character."
    motion = getattr(args, "motion", None)
    if motion and (not motion.lower().endswith(".bvh") or not os.path.isfile(motion)):
        return f"--motion {motion!r} is not an existing .bvh file: give a BVH mocap file."
    if motion and getattr(args, "action", None):
        return "--action and --motion both animate the character: pass one of them."
    try:
        validate_output_dir(args.out)
    except SetupError as exc:
        return exc.message.replace("Output folder", "--out folder")
    return None


class _BlenderOutputToFile:
    """Blender prints a line per render tile and saved file on the C-level
    stdout; send that to a log so the progress bar (stderr) stays readable."""

    def __init__(self, path: str):
        self.path = path
        self._saved = None
        self._file = None

    def __enter__(self):
        sys.stdout.flush()
        self._file = open(self.path, "ab")
        self._saved = os.dup(1)
        os.dup2(self._file.fileno(), 1)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)
        self._file.close()


def run(args) -> int:
    problem = check_args(args)
    if problem:
        print(f"inhabit demo: {problem}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    from backend.cli.blender_env import use_blender_caches
    use_blender_caches()
    from backend.cli.progress import ProgressBar
    from backend.blender.demo.run import DemoOptions, run_demo
    from blender_addon.core.settings import SetupError
    from backend.blender.headless import ShotFailed

    cancel = {"asked": False}

    def on_sigint(*_):
        cancel["asked"] = True

    bar = ProgressBar()
    old = signal.signal(signal.SIGINT, on_sigint)
    quiet = _BlenderOutputToFile(os.path.join(args.out, "blender.log"))
    try:
        with quiet:
            summary = run_demo(DemoOptions(out=args.out, engine=args.engine, weights=args.weights, frames=args.frames,
                                           size=args.size, samples=args.samples, character=args.character,
                                           action=args.action, motion=args.motion),
                               bar=bar, should_cancel=lambda: cancel["asked"])
    except SetupError as exc:
        bar.close()
        print(f"inhabit demo: {exc.message}", file=sys.stderr)
        return 2
    except ShotFailed as exc:
        bar.close()
        print(f"inhabit demo: the job failed: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        bar.close()
        print(f"inhabit demo: {exc}", file=sys.stderr)
        return 130 if cancel["asked"] else 1
    finally:
        signal.signal(signal.SIGINT, old)
    bar.close()
    m = summary["metrics"]
    t = summary["timings"]
    print(f"inhabit demo: {m['frames']} frames at {summary['size']}x{summary['size']} in {m['seconds']:.1f} s "
          f"(scene {t['scene']:.1f} s, ground truth {t['ground_truth']:.1f} s, job {t['job']:.1f} s, "
          f"metrics {t['metrics']:.1f} s, video {t['video']:.1f} s)")
    print("  SSIM/PSNR against the character rendered in the scene, over every frame:")
    print(f"  engine {m['engine']['name']:<8} SSIM {m['engine']['ssim']:.4f}  PSNR {m['engine']['psnr']:.2f} dB")
    print(f"  baseline         SSIM {m['baseline']['ssim']:.4f}  PSNR {m['baseline']['psnr']:.2f} dB")
    for label in ("video", "blend", "contact_sheet", "metrics_path", "take_dir"):
        print(f"  {label.replace('_path', ''):<14} {summary[label]}")
    print(f"  strip          {summary['strip']!r} on the sequencer of demo.blend")
    return 0
