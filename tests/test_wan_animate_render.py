"""wan-animate end to end on real parts: ``inhabit render`` (headless bpy,
the add-on's passes) against ``inhabit serve --engine wan-animate --weights
<tiny folder>`` over ZeroMQ, and ``inhabit demo --engine wan-animate``."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import bpy  # noqa: F401  (a required test dependency: missing bpy must fail, not skip)
from blender_addon.core import png
from tests import serverproc
from tests.cli import inhabit
from tests.blender_scene import build_scene

ROOT = Path(__file__).resolve().parent.parent
SIZE = 64


def _cli(args, timeout=240):
    return inhabit(*args, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_dir(tiny_weights):
    return tiny_weights("wan-animate")


def test_inhabit_render_against_inhabit_serve_wan_animate(tiny_dir, tmp_path):
    build_scene(size=SIZE, frames=3)
    blend = str(tmp_path / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    ref = str(tmp_path / "ref.png")
    png.write_png_atomic(ref, np.full((48, 32, 3), 150, np.uint8))
    with serverproc.start_server(engines=("wan-animate",), weights=tiny_dir, startup_timeout=60) as srv:
        proc = _cli(["render", blend, "--armature", "Rig", "--reference", ref, "--engine", "wan-animate",
                     "--server", srv.address, "--resolution", f"{SIZE}x{SIZE}", "--samples", "1",
                     "--param", "steps=1", "--param", "segment_length=5", "--out", str(tmp_path / "out")])
        assert proc.returncode == 0, proc.stderr[-3000:] + srv.log()[-2000:]
    pngs = sorted((tmp_path / "out").rglob("frame_*.png"))
    frames = [p for p in pngs if p.parent.name != "matte"]
    assert len(frames) == 3
    img = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (SIZE, SIZE, 4)
    assert "done: 3 frames" in proc.stderr


def test_inhabit_demo_with_wan_animate(tiny_dir, tmp_path):
    out = tmp_path / "out"
    proc = _cli(["demo", "--engine", "wan-animate", "--weights", str(tiny_dir), "--out", str(out), "--frames", "2",
                 "--size", "64", "--samples", "1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["engine"]["name"] == "wan-animate" and metrics["frames"] == 2
    assert (out / "demo.mp4").stat().st_size > 0


@pytest.mark.parametrize("args, words", [([], ["wan-animate", "--weights"]),
                                         (["--weights", "WEIGHTS", "--size", "72"], ["--size", "multiple of 16"])])
def test_demo_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, args, words):
    from backend.cli import main
    args = [str(tmp_path) if a == "WEIGHTS" else a for a in args]
    assert main(["demo", "--engine", "wan-animate", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(w in err for w in words)
