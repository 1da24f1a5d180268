"""bench/wan_animate.py still runs (tiny CPU form, nothing written), and its GPU
path imports nothing a bare CUDA box lacks (pyzmq, bpy): the real-size
pipeline is built on the meta device with both blocked. Numbers are not
checked here; targets live in the benchmark."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from backend.cli.local_server import REPO_ROOT

# Run from a copy of what the GPU bundle carries: pyzmq and bpy absent, and the project's own
# packages importable only from the copy (the checkout is on sys.path through the editable install).
BLOCK = """
import importlib.machinery, os, sys, runpy
HERE = os.getcwd()
class Block:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ("zmq", "bpy"):
            raise ImportError(name + " is not on the GPU box")
        if top in ("models", "blender_addon", "bench", "backend", "tests") and name == top:
            spec = importlib.machinery.PathFinder.find_spec(name, [HERE])
            if spec is None:
                raise ImportError(name + " is not in the GPU bundle")
            return spec
        return None
sys.meta_path.insert(0, Block())
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.abspath(os.environ["REPO_ROOT"])]
sys.argv = ["bench/wan_animate.py", "--gpu-dry"]
runpy.run_path("bench/wan_animate.py", run_name="__main__")
"""


def test_cpu_form_runs():
    out = subprocess.run([sys.executable, "bench/wan_animate.py", "--frames", "2", "--runs", "1", "--no-seams",
                          "--cpu-only", "--no-write", "--no-speed"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| 2 |" in out.stdout and "none ran; torch sees no CUDA" in out.stdout


def test_fast_preset_speed_row_runs_in_tiny_form():
    """The 20-step and fast-preset rows of bench/wan_speed.py (the others run in `make bench`)."""
    out = subprocess.run([sys.executable, "bench/wan_animate.py", "--speed-only", "--no-write", "--speed-rows",
                          "4 steps (preset fast)"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 20 steps") or line.startswith("| 4 steps")]
    assert [r.split(" | ")[0] for r in rows] == ["| 20 steps (Wan's recipe, UniPC)", "| 4 steps (preset fast)"]
    assert float(rows[0].split(" | ")[-1].strip(" |")) == 0.0 and float(rows[1].split(" | ")[-1].strip(" |")) > 0


def test_gpu_path_builds_the_real_size_model_without_pyzmq_or_bpy(tmp_path):
    from bench.gpu_bundle import copy_code
    copy_code(str(tmp_path))
    out = subprocess.run([sys.executable, "-c", BLOCK], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, REPO_ROOT=str(REPO_ROOT), PYTHONPATH=str(tmp_path)))
    assert out.returncode == 0, out.stderr[-3000:]
    sizes = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(sizes["transformer_params"] / 1e9 - 17.3) < 0.1      # Wan2.2-Animate-14B's transformer
    assert abs(sizes["image_encoder_params"] / 1e9 - 0.63) < 0.01    # CLIP ViT-H/14 vision tower
