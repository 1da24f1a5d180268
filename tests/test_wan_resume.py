"""wan-animate resumes at segment boundaries: ``inhabit render`` against a real
``inhabit serve --engine wan-animate`` (tiny weights) whose server is killed
mid-shot; ``--resume`` after restarting it regenerates from the start of the
segment holding the first missing frame, and those frames equal an
uninterrupted render that starts at that frame."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

import bpy  # noqa: F401  (a required test dependency: missing bpy must fail, not skip)
from blender_addon.core import png, protocol
from tests import serverproc
from tests.blender_scene import build_scene
from tests.cli import inhabit
from tests.test_farm import pngs, popen_render, take_of, wait_for_frames

SIZE, FRAMES = 64, 9
# Segments of 5 frames carrying 1: they start at shot indices 0, 4, 8. 30 steps a segment leave the
# test seconds to kill the server between the first segment's frames and the end of the shot.
PARAMS = ("--param", "segment_length=5", "--param", "carried_frames=1", "--param", "steps=30", "--param", "seed=7")


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    d = tmp_path_factory.mktemp("wanshot")
    build_scene(size=SIZE, frames=FRAMES)
    blend = str(d / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    ref = str(d / "ref.png")
    png.write_png_atomic(ref, np.full((48, 32, 3), 150, np.uint8))
    return blend, ref


def _args(shot, out, address, *extra):
    blend, ref = shot
    return ["render", blend, "--armature", "Rig", "--reference", ref, "--engine", "wan-animate", "--server", address,
            "--resolution", f"{SIZE}x{SIZE}", "--samples", "1", "--out", str(out), "--server-timeout", "2", *PARAMS,
            *extra]


def test_wan_animate_declares_its_segments_as_restart_windows():
    from backend.server.engines.wan_animate import WanAnimateEngine
    entry = WanAnimateEngine.describe()
    assert entry["restart_window"] == {"frames": "segment_length", "overlap": "carried_frames"}
    params = {"segment_length": 77, "carried_frames": 5}   # segments start at 0, 72, 144, ...
    assert [protocol.restart_frame(entry, params, f) for f in (0, 71, 72, 150)] == [0, 0, 72, 144]


def test_killed_mid_shot_then_resumed_equals_an_uninterrupted_run_from_the_restart(tiny_weights, shot, tmp_path):
    tiny = tiny_weights("wan-animate")
    address = f"tcp://127.0.0.1:{serverproc.free_port()}"
    out = tmp_path / "out"
    with serverproc.start_server(engines=("wan-animate",), weights=tiny, address=address, startup_timeout=60) as srv:
        proc = popen_render(_args(shot, out, address))
        wait_for_frames(str(out), 5, proc, timeout=180)      # the first segment (frames 0-4) is on disk
        srv.proc.kill()                                       # mid-way through the second segment
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    take = take_of(str(out))
    kept = pngs(take)
    assert 5 <= len(kept) < FRAMES, kept
    first_missing = len(kept)
    restart = first_missing // 4 * 4                          # the segment start at or before the gap
    ref_out = tmp_path / "from_restart"
    with serverproc.start_server(engines=("wan-animate",), weights=tiny, address=address, startup_timeout=60):
        res = inhabit(*_args(shot, out, address, "--resume"), timeout=300)
        # An uninterrupted render that starts at the restart frame (scene frames are 1-based).
        full = inhabit(*_args(shot, ref_out, address, "--frames", f"{restart + 1}-{FRAMES}"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert take_of(str(out)) == take and len(pngs(take)) == FRAMES
    assert f"regenerating {first_missing - restart} kept frame" in res.stderr
    assert full.returncode == 0, full.stderr[-3000:]
    ref_take = take_of(str(ref_out))
    for i in range(restart, FRAMES):
        name = f"frame_{i + 1:05d}.png"
        got = cv2.imread(os.path.join(take, name), cv2.IMREAD_UNCHANGED)
        want = cv2.imread(os.path.join(ref_take, name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(got, want), name
