"""Proof on a CPU that training learns: dataset -> tiny AA2 training -> held-out eval.

1. ``inhabit dataset make``: N random clips (default 160 x 8 frames x 64 px).
2. ``inhabit train --config tiny``: stage 0 (the tiny autoencoder, which has
   no pretrained weights) for a fixed time, then stage 1 from it for a fixed
   time (both through the real command, checkpoints and all).
3. ``inhabit eval`` on the test split, through real servers: the untrained
   tiny pipeline (the start of training), after stage 0 only, after stage 1,
   the preview engine and the naive baseline.

Writes the "train" section of bench/RESULTS.md and bench/train_loss.png.

    .venv/bin/python bench/train.py [--clips 160] [--vae-minutes 3] [--minutes 10] [--out bench_out/train]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, env) -> float:
    t = time.monotonic()
    cmd = [sys.executable, "-m", "backend.cli", *map(str, args)]
    print("$ inhabit " + " ".join(map(str, args)), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode:
        raise SystemExit(f"inhabit {args[0]} failed with exit code {proc.returncode}")
    return time.monotonic() - t


def loss_summary(path: str) -> list[tuple[int, float]]:
    """Mean loss over consecutive tenths of the run: the curve in numbers."""
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    n = len(rows)
    out = []
    for k in range(10):
        part = rows[k * n // 10:(k + 1) * n // 10]
        if part:
            out.append((part[-1]["step"], sum(r["loss"] for r in part) / len(part)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=160)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--vae-minutes", type=float, default=3.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--eval-steps", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench_out", "train"))
    ap.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    a = ap.parse_args()

    env = dict(os.environ)
    # Two cores shared: one torch thread per process avoids OpenMP spin-waits
    # that made a step 20x slower under contention (measured).
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    out = os.path.abspath(a.out)
    data = os.path.join(out, "data")
    t_data = cli("dataset", "make", "--out", data, "--clips", a.clips, "--frames", a.frames, "--size", a.size,
                 "--workers", a.workers, env=env)

    untrained = os.path.join(out, "untrained")
    if not os.path.isdir(untrained):
        sys.path.insert(0, ROOT)
        from models.aa2.tiny import tiny_pipeline
        tiny_pipeline(0).save_pretrained(untrained, safe_serialization=True)   # what `inhabit train` starts from

    vae_run, run = os.path.join(out, "stage0"), os.path.join(out, "stage1")
    for d in (vae_run, run):
        shutil.rmtree(d, ignore_errors=True)
    big = 1_000_000
    t_vae = cli("train", "--data", data, "--config", "tiny", "--out", vae_run, "--stage", 0, "--steps", big,
                "--lr", 2e-3, "--max-minutes", a.vae_minutes, "--checkpoint-every", 500, env=env)
    t_train = cli("train", "--data", data, "--config", "tiny", "--init", os.path.join(vae_run, "last"), "--out", run,
                  "--stage", 1, "--steps", big, "--max-minutes", a.minutes, "--checkpoint-every", 500, env=env)

    ev = os.path.join(out, "eval")
    t_eval = cli("eval", "--data", data, "--split", "test", "--baseline", "--out", ev, "--steps", a.eval_steps,
                 "--engine", "aa2", "--weights", untrained, "--label", "aa2 untrained",
                 "--engine", "aa2", "--weights", os.path.join(vae_run, "last"), "--label", "aa2 stage 0 only",
                 "--engine", "aa2", "--weights", os.path.join(run, "last"), "--label", "aa2 trained",
                 "--engine", "preview", env=env)
    with open(os.path.join(ev, "eval.json")) as fh:
        report = json.load(fh)
    with open(os.path.join(ev, "eval.md")) as fh:
        table = fh.read().strip()
    e = report["engines"]
    d_psnr = e["aa2 trained"]["psnr"] - e["aa2 untrained"]["psnr"]
    d_ssim = e["aa2 trained"]["ssim"] - e["aa2 untrained"]["ssim"]
    vs_prev = e["aa2 trained"]["psnr"] - e["preview"]["psnr"]
    curve0, curve1 = loss_summary(os.path.join(vae_run, "loss.jsonl")), loss_summary(os.path.join(run, "loss.jsonl"))
    text = "\n".join([
        "## Training (bench/train.py)", "",
        f"Dataset: {a.clips} clips x {a.frames} frames x {a.size} px rendered in {t_data:.0f} s "
        f"({a.workers} Blender workers, 2 shared cores). Tiny config on CPU, one torch thread: stage 0 "
        f"(autoencoder) {a.vae_minutes:g} min, stage 1 {a.minutes:g} min from it, batch 4. "
        f"Commands took {t_vae:.0f} s and {t_train:.0f} s; eval {t_eval:.0f} s "
        f"(aa2 at {a.eval_steps} DDIM steps, guidance 2).", "",
        "Stage 1 loss (v-prediction MSE), mean per tenth of the run, as `step: loss`: "
        + ", ".join(f"{s}: {v:.4f}" for s, v in curve1) + ".",
        "Stage 0 loss (reconstruction MSE in [-1, 1]): " + ", ".join(f"{s}: {v:.4f}" for s, v in curve0) + ".",
        "Curve: bench/train_loss.png.", "",
        table, "",
        f"Trained vs untrained aa2 on the held-out clips: {d_psnr:+.2f} dB PSNR, {d_ssim:+.4f} SSIM. "
        f"Against preview: {vs_prev:+.2f} dB PSNR "
        + ("(the trained tiny model is behind the classical warp)." if vs_prev < 0 else "(ahead of preview)."),
    ])
    print(text)
    if not a.no_write:
        shutil.copy(os.path.join(run, "loss.png"), os.path.join(ROOT, "bench", "train_loss.png"))
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from results_file import write_section  # bench/ is on sys.path when run as a script
        write_section("train", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
