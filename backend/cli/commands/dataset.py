"""``inhabit dataset make``: render a training dataset of random clips in headless Blender.

W worker processes (bpy as a module, one Blender each) render disjoint clips;
each clip lands in its folder all at once, so a killed run started again with
the same arguments continues where it stopped, and the same seed gives the
same bytes. The layout is described in backend/training/data/layout.py and
docs/dataset.md. With ``--motions DIR`` every BVH there is checked (length,
then imported and mapped in one Blender) before any clip is rendered, and a
share of the clips is driven by them. Exit codes: 0 done, 1 failed, 2 bad
input, 130 cancelled.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

MAX_CLIPS, MAX_FRAMES = 1_000_000, 32
MIN_SIZE, MAX_SIZE = 32, 1024


def add_parser(subparsers):
    p = subparsers.add_parser("dataset", help="make a training dataset of rendered clips", description=__doc__)
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    m = sub.add_parser("make", help="render random clips with exact labels")
    m.add_argument("--out", required=True, metavar="DIR", help="dataset folder (created; resumed if it exists)")
    m.add_argument("--clips", type=int, required=True, help="number of clips")
    m.add_argument("--frames", type=int, default=8, help="frames per clip (default %(default)s)")
    m.add_argument("--size", type=int, default=64, metavar="PX", help="square frame size, multiple of 8 "
                                                                      "(default %(default)s)")
    m.add_argument("--seed", type=int, default=0, help="dataset seed (default %(default)s)")
    m.add_argument("--workers", type=int, default=1, help="parallel Blender processes (default %(default)s)")
    m.add_argument("--samples", type=int, default=8, help="Cycles samples per render (default %(default)s)")
    m.add_argument("--motions", metavar="DIR", help="folder of .bvh files retargeted onto the characters")
    m.add_argument("--motion-share", type=float, default=0.5, metavar="F",
                   help="with --motions: share of the clips that take a BVH (default %(default)s)")
    return p


def check_args(args) -> str | None:
    if args.clips < 1 or args.clips > MAX_CLIPS:
        return f"--clips must be between 1 and {MAX_CLIPS}, got {args.clips}."
    if not 1 <= args.frames <= MAX_FRAMES:
        return f"--frames must be between 1 and {MAX_FRAMES} (the motion modules' window), got {args.frames}."
    if not (MIN_SIZE <= args.size <= MAX_SIZE) or args.size % 8:
        return f"--size must be a multiple of 8 between {MIN_SIZE} and {MAX_SIZE}, got {args.size}."
    if args.workers < 1:
        return f"--workers must be at least 1, got {args.workers}."
    if args.samples < 1:
        return f"--samples must be at least 1, got {args.samples}."
    if not 0.0 <= args.motion_share <= 1.0:
        return f"--motion-share must be between 0 and 1, got {args.motion_share}."
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        return f"--out {args.out!r} is a file: pass a folder."
    return None


def _resume_problem(out: str, manifest: dict) -> str | None:
    """A folder holding another dataset must not be mixed with this one."""
    from backend.training.data import layout
    path = os.path.join(out, "manifest.json")
    if not os.path.exists(path):
        if os.path.isdir(out) and [n for n in os.listdir(out) if not n.startswith(".")]:
            return f"--out {out!r} is not empty and holds no dataset: pass a new or empty folder."
        return None
    try:
        old = layout.read_manifest(out)
    except layout.DatasetError as exc:
        return str(exc).replace("--data", "--out")
    if old != manifest:
        diff = [k for k in manifest if old.get(k) != manifest[k] and k != "splits"] or ["splits"]
        return (f"--out {out!r} holds a dataset made with other settings ({', '.join(diff)}): "
                "use the same arguments to continue it, or a new folder.")
    return None


def run(args) -> int:
    if getattr(args, "dataset_command", None) != "make":
        print("inhabit dataset: say what to do: `inhabit dataset make --out DIR --clips N`.", file=sys.stderr)
        return 2
    problem = check_args(args)
    from backend.training.data import layout
    from backend.training.data.motions import MotionError, list_motions
    motions = None
    if not problem and args.motions:
        try:
            motions = list_motions(args.motions, args.frames)
        except MotionError as exc:
            problem = str(exc)
    manifest = layout.manifest_for(clips=args.clips, frames=args.frames, size=args.size, seed=args.seed,
                                   samples=args.samples, motions=motions, motion_share=args.motion_share)
    problem = problem or _resume_problem(args.out, manifest)
    if not problem and motions:
        try:
            problem = _bvh_problem(args.motions, [m["file"] for m in motions], args.out)
        except RuntimeError as exc:
            print(f"inhabit dataset: {exc}", file=sys.stderr)
            return 1
    if problem:
        print(f"inhabit dataset: {problem}", file=sys.stderr)
        return 2
    os.makedirs(os.path.join(args.out, "clips"), exist_ok=True)
    layout.write_json_atomic(os.path.join(args.out, "manifest.json"), manifest)
    return make(args.out, manifest, workers=args.workers, motions=os.path.abspath(args.motions) if motions else None)


def _blender_env() -> dict:
    from backend.cli.local_server import REPO_ROOT
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    from backend.cli.blender_env import blender_env
    return blender_env(env)


def _bvh_problem(folder: str, names: list[str], out: str) -> str | None:
    """Import and map every BVH in one Blender before any clip is rendered (a bad file: one sentence)."""
    from backend.cli.local_server import REPO_ROOT
    proc = subprocess.run([sys.executable, "-m", "backend.blender.clips.bvh_motion", os.path.abspath(folder),
                           *names], cwd=REPO_ROOT, env=_blender_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if proc.returncode == 2 and lines:
        return lines[-1]
    raise RuntimeError(f"checking the --motions files failed (exit {proc.returncode}): {' '.join(lines[-3:])}")


def make(out: str, manifest: dict, *, workers: int, motions: str | None = None) -> int:
    from backend.cli.progress import ProgressBar
    from backend.training.data import layout
    from backend.cli.local_server import REPO_ROOT

    total = manifest["clips"]
    todo = [i for i in range(total) if not layout.is_complete(out, i)]
    bar = ProgressBar()
    done0 = total - len(todo)
    bar.update("clips", done0, total, "resuming" if done0 else "")
    if not todo:
        bar.close()
        print(f"inhabit dataset: {out} already holds all {total} clips.", file=sys.stderr)
        return 0
    env = _blender_env()
    workers = min(workers, len(todo))
    logs_dir = os.path.join(out, ".logs")
    os.makedirs(logs_dir, exist_ok=True)
    procs = []
    for w in range(workers):
        mine = todo[w::workers]
        log = open(os.path.join(logs_dir, f"worker_{w}.log"), "ab")
        cmd = [sys.executable, "-m", "backend.blender.clips.worker", os.path.abspath(out), str(manifest["seed"]),
               str(manifest["frames"]), str(manifest["size"]), str(manifest["samples"]), ",".join(map(str, mine))]
        cmd += [motions] if motions else []
        procs.append((subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL), log))
    t0 = time.monotonic()
    rc, shown = 0, 0
    try:
        while True:
            alive = [p for p, _ in procs if p.poll() is None]
            done = sum(layout.is_complete(out, i) for i in todo)
            if done != shown:
                shown = done
                rate = done / max(time.monotonic() - t0, 1e-6)
                bar.update("clips", done0 + done, total, f"{rate * 60:.1f} clips/min",
                           (len(todo) - done) / rate)
            if not alive:
                break
            time.sleep(0.5)
        failed = [(i, p.returncode) for i, (p, _) in enumerate(procs) if p.returncode]
        if failed:
            w, code = failed[0]
            bar.close()
            print(f"inhabit dataset: worker {w} failed (exit {code}); see {logs_dir}/worker_{w}.log. "
                  "Run the same command again to continue.", file=sys.stderr)
            rc = 1
    except KeyboardInterrupt:
        rc = 130
        bar.close()
        print("inhabit dataset: cancelled; run the same command again to continue.", file=sys.stderr)
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            log.close()
    if rc == 0:
        bar.close()
        print(f"inhabit dataset: {total} clips in {out} ({len(todo)} rendered in "
              f"{time.monotonic() - t0:.0f} s).", file=sys.stderr)
    return rc
