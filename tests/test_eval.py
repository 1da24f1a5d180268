"""``inhabit eval`` on a tiny dataset: every engine named in the table, scores that mean something."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from backend.training.evaluation.scores import Tally
from backend.cli.local_server import REPO_ROOT


def _eval(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "backend.cli", "eval", *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_eval_table_names_every_engine(tiny_dataset, tmp_path):
    from models.aa2.tiny import tiny_pipeline
    weights = tmp_path / "tiny"
    tiny_pipeline(0).save_pretrained(str(weights), safe_serialization=True)
    out = tmp_path / "eval"
    proc = _eval("--data", tiny_dataset, "--split", "test", "--engine", "preview", "--engine", "aa2", "--weights",
                 weights, "--label", "aa2 untrained", "--baseline", "--out", out, "--steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "eval.md").read_text()
    for label in ("naive baseline", "preview", "aa2 untrained"):
        assert f"| {label} |" in table
    report = json.loads((out / "eval.json").read_text())
    assert set(report["engines"]) == {"naive baseline", "preview", "aa2 untrained"}
    for label, row in report["engines"].items():
        assert row["frames"] == 3 and 0 < row["ssim"] <= 1 and row["psnr"] > 5, (label, row)
        assert (out / report["contact_sheets"][label]).is_file()


def test_eval_bad_input_one_sentence(tiny_dataset, tmp_path):
    proc = _eval("--data", tiny_dataset, "--split", "val", "--engine", "preview", "--out", tmp_path / "e")
    assert proc.returncode == 0, proc.stderr   # val has one clip
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _eval("--data", empty, "--engine", "preview", "--out", tmp_path / "e2")
    assert proc.returncode == 2 and "is empty" in proc.stderr
    proc = _eval("--data", tiny_dataset, "--engine", "aa2", "--out", tmp_path / "e3")
    assert proc.returncode == 2 and "--weights DIR" in proc.stderr
    proc = _eval("--data", tiny_dataset, "--split", "holdout", "--engine", "preview", "--out", tmp_path / "e4")
    assert proc.returncode == 2 and "--split must be one of" in proc.stderr


def test_scores_inside_outside_and_occlusion():
    h = w = 16
    env = np.full((h, w, 3), 100, np.uint8)
    truth = env.copy()
    truth[4:12, 4:8] = 200                            # visible character
    mask = np.zeros((h, w), np.uint8)
    mask[4:12, 4:12] = 255                            # the right half hides behind the environment
    cdepth = np.full((h, w), 2.0, np.float32)
    sdepth = np.full((h, w), 5.0, np.float32)
    sdepth[:, 8:] = 1.0
    frame = {"environment": env, "character_mask": mask, "character_depth": cdepth, "scene_depth": sdepth}
    perfect, pasted = Tally(), Tally()
    perfect.add(truth, truth, frame)
    paste = truth.copy()
    paste[4:12, 8:12] = 200                           # draws over the occluder
    pasted.add(paste, truth, frame)
    a, b = perfect.summary(), pasted.summary()
    assert a["occlusion"] == 1.0 and b["occlusion"] == 0.0 and a["occluded_px"] == 32
    assert a["psnr_in"] == 100.0 and b["psnr_in"] < 20 and b["psnr_out"] == 100.0
