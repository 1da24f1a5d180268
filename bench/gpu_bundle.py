"""Build the folder ``make gpu-bench-bundle`` carries to a GPU box that has torch
(CUDA), transformers, accelerate, peft, safetensors, opencv and pillow but no
diffusers, pyzmq or bpy: the benchmark, the model code it imports, and
diffusers as pure-Python wheels unpacked into ``site/``. Run it there with
``sh run.sh`` (= ``PYTHONPATH=site:. python bench/wan_animate.py --gpu-only``).

    python bench/gpu_bundle.py OUT_DIR [--wheels DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# diffusers and the pure-Python requirements a transformers install may lack.
WHEELS = ("diffusers==0.42.1", "importlib_metadata", "zipp")
CODE = ("models", "blender_addon/__init__.py", "blender_addon/core/__init__.py", "blender_addon/core/protocol.py",
        "blender_addon/core/conventions.py", "blender_addon/core/codec.py", "blender_addon/core/messages.py",
        "bench/wan_animate.py", "bench/wan_speed.py", "bench/results_file.py",
        "bench/RESULTS.md")
LIMIT = 64 * 2 ** 20


def copy_code(out: str) -> None:
    """The project files the GPU rows import (tests/test_wan_animate_bench.py runs them from such a copy)."""
    for rel in CODE:
        src, dst = os.path.join(ROOT, rel), os.path.join(out, rel)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)


def build(out: str, wheels: str | None = None) -> int:
    if os.path.exists(out):
        shutil.rmtree(out)
    site = os.path.join(out, "site")
    os.makedirs(site)
    wheel_dir = wheels or os.path.join(out, "_wheels")
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "-d", wheel_dir, *WHEELS], check=True)
    for name in sorted(os.listdir(wheel_dir)):
        if not name.endswith("-py3-none-any.whl"):
            raise SystemExit(f"{name} is not a pure-Python wheel")
        with zipfile.ZipFile(os.path.join(wheel_dir, name)) as zf:
            zf.extractall(site)
    if not wheels:
        shutil.rmtree(wheel_dir)
    copy_code(out)
    with open(os.path.join(out, "run.sh"), "w") as fh:
        fh.write('#!/bin/sh\n# The GPU rows of bench/wan_animate.py; results land in bench/RESULTS.md and '
                 'bench/wan_speed_gpu.json here: copy both back.\n'
                 'cd "$(dirname "$0")" && PYTHONPATH=site:. exec python bench/wan_animate.py --gpu-only "$@"\n')
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"{out}: {size / 2 ** 20:.1f} MiB (limit 64 MiB)")
    return 0 if size < LIMIT else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--wheels", help="folder of already downloaded wheels (offline)")
    a = ap.parse_args()
    sys.exit(build(a.out, a.wheels))
