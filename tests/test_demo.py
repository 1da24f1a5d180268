"""``inhabit demo`` end to end (a short shot, real Blender, real server
process) and its bad-input checks."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.cli import main
from tests.cli import inhabit

ROOT = Path(__file__).resolve().parent.parent
FRAMES, SIZE = 6, 128


def _run(args, timeout=240):
    return inhabit(*args, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = _run(["demo", "--out", str(out), "--frames", str(FRAMES), "--size", str(SIZE)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_demo_writes_video_blend_sheet_and_metrics(demo):
    out, proc = demo
    video = out / "demo.mp4"
    cap = cv2.VideoCapture(str(video))
    decoded = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape[:2] == (SIZE, SIZE)
        decoded += 1
    cap.release()
    assert decoded == FRAMES
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > 5 * 100 and sheet.std() > 10  # five columns, real content
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["engine"]["name"] == "preview" and metrics["frames"] == FRAMES and metrics["seconds"] > 0
    for key in ("ssim", "psnr"):
        assert np.isfinite(metrics["engine"][key]) and np.isfinite(metrics["baseline"][key])
    # The engine (warp + occlusion + brightness match) must beat pasting the reference.
    assert metrics["engine"]["ssim"] > metrics["baseline"]["ssim"]
    assert "SSIM" in proc.stdout and "demo.mp4" in proc.stdout


def test_demo_blend_holds_the_result_strip(demo):
    out, _ = demo
    probe = ("import bpy, json, sys; from blender_addon import compat; "
             "bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); "
             "print(json.dumps([[s.name, s.type, s.frame_final_duration, bpy.path.abspath(s.directory)] "
             "for sc in bpy.data.scenes if sc.sequence_editor for s in compat.strips_all(sc.sequence_editor)]))")
    proc = subprocess.run([sys.executable, "-c", probe, str(out / "demo.blend")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    strips = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(strips) == 1
    name, kind, duration, directory = strips[0]
    assert kind == "IMAGE" and duration == FRAMES
    assert len([p for p in os.listdir(directory) if p.endswith(".png")]) == FRAMES


def test_demo_reference_has_transparent_background_and_keypoints(demo):
    out, _ = demo
    ref = cv2.imread(str(out / "reference.png"), cv2.IMREAD_UNCHANGED)
    assert ref.shape == (SIZE, SIZE, 4)
    alpha = ref[..., 3]
    assert alpha[0, 0] == 0 and 0.05 < (alpha > 0).mean() < 0.6
    kps = np.asarray(json.loads((out / "reference_keypoints.json").read_text()), np.float32)
    assert kps.shape == (18, 4) and (kps[:, 3] == 1).all()
    # Every keypoint lands on (or right next to) the rendered character.
    dilated = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((7, 7), np.uint8))
    for x, y in kps[:, :2]:
        assert dilated[int(y), int(x)], (x, y)


@pytest.mark.parametrize("args, words", [
    (["--frames", "0"], ["--frames", "at least 1"]),
    (["--engine", "nosuch"], ["Unknown engine", "nosuch", "preview"]),
    (["--engine", "aa2"], ["aa2", "--weights"]),
    (["--size", "100"], ["--size", "multiple of 8"]),
])
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, args, words):
    t0 = time.monotonic()
    assert main(["demo", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("inhabit demo: ")
    for w in words:
        assert w in err
    assert not (tmp_path / "o").exists()  # nothing started
    assert time.monotonic() - t0 < 5


def test_unwritable_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out" in err and "not writable" in err and err.count("\n") == 0


def test_ctrl_c_stops_the_demo_with_exit_130(tmp_path):
    import signal
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "demo", "--out", str(out), "--frames", "40",
                             "--size", "64"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        gt = out / "work" / "ground_truth"
        deadline = time.monotonic() + 60
        while not (gt.is_dir() and any(gt.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, "demo never reached the ground-truth renders"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "cancelled" in err
    assert not (out / "demo.mp4").exists()
    assert len(list(gt.iterdir())) < 40


def test_naive_baseline_pastes_reference_at_mask_box_only():
    from backend.training.evaluation.report import naive_baseline, sample_frames
    env = np.full((40, 50, 3), 90, np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 20:30] = 255
    ref = np.zeros((16, 16, 4), np.uint8)
    ref[4:12, 6:10] = (200, 10, 10, 255)   # opaque red body on a transparent background
    out = naive_baseline(env, mask, ref)
    assert (out[10:30, 20:30] == (200, 10, 10)).all()   # body stretched onto the whole mask box
    outside = np.ones((40, 50), bool)
    outside[10:30, 20:30] = False
    assert (out[outside] == 90).all()
    assert (naive_baseline(env, np.zeros_like(mask), ref) == env).all()  # no character: environment unchanged
    assert sample_frames(48, 4) == [0, 16, 31, 47] and sample_frames(1, 4) == [0]


def test_demo_runs_the_aa2_engine_with_local_weights(tmp_path):
    # Tiny random weights: this checks the wiring (server started with
    # --weights, the same job, the same outputs), not the picture quality.
    weights = tmp_path / "weights"
    made = _run(["doctor", "--save-tiny", str(weights)], timeout=180)
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "out"
    proc = _run(["demo", "--engine", "aa2", "--weights", str(weights), "--out", str(out), "--frames", "2",
                 "--size", "64"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["engine"]["name"] == "aa2" and metrics["frames"] == 2
    assert (out / "demo.mp4").stat().st_size > 0 and (out / "demo.blend").is_file()


BCN = ROOT / "tests" / "assets" / "BCN_Epileptic.glb"
RED_ECLIPSE = ROOT / "tests" / "assets" / "redeclipse_player.glb"
BODY = [n for n in ("neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle")]


@pytest.mark.parametrize("extra", [[], ["--motion", str(ROOT / "tests" / "assets" / "cmu_01_01_start.bvh")]],
                         ids=["own_action", "cmu_bvh"])
def test_demo_with_a_real_character_beats_the_baseline(tmp_path, extra):
    from blender_addon.core import conventions
    out = tmp_path / "out"
    proc = _run(["demo", "--out", str(out), "--frames", "6", "--size", "128", "--character", str(BCN), *extra])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["character"] == "BCN_Epileptic.glb" and metrics["frames"] == 6
    assert metrics["engine"]["ssim"] > metrics["baseline"]["ssim"]
    assert metrics["engine"]["psnr"] > metrics["baseline"]["psnr"]
    # The reference: every keypoint on the character, left on the image's right (it faces the camera).
    names = conventions.KEYPOINT_NAMES
    ref = cv2.imread(str(out / "reference.png"), cv2.IMREAD_UNCHANGED)
    kps = np.asarray(json.loads((out / "reference_keypoints.json").read_text()), np.float32)
    assert (kps[:, 3] == 1).all()
    on_body = cv2.dilate((ref[..., 3] > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
    assert all(on_body[int(y), int(x)] for x, y in kps[:, :2])
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert kps[names.index("left_" + part), 0] > kps[names.index("right_" + part), 0], part
    # Every shot frame, exported from the saved demo with no --armature, --body or map: the
    # body joints are all there and never swap sides (the character keeps facing the camera).
    exp = tmp_path / "export"
    proc = _run(["export", str(out / "demo.blend"), "--reference", str(out / "reference.png"), "--samples", "1",
                 "--resolution", "64x64", "--out", str(exp)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = sorted(exp.glob("frame_*.npz"))
    assert len(frames) == 6
    for f in frames:
        with np.load(f) as z:
            k = z["keypoints"]
        assert all(k[names.index(n), 3] > 0 for n in BODY), f.name
        for part in ("shoulder", "hip"):
            assert k[names.index("left_" + part), 0] > k[names.index("right_" + part), 0], (f.name, part)


@pytest.mark.parametrize("args, words", [
    (["--character", "nope.glb"], ["--character", "does not exist"]),
    (["--character", "notes.txt"], ["--character", ".glb"]),
    (["--action", "Walk"], ["--action", "--character"]),
    (["--character", str(BCN), "--motion", "walk.txt"], ["--motion", ".bvh"]),
])
def test_character_bad_input_is_one_sentence(tmp_path, capsys, args, words):
    assert main(["demo", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    for w in words:
        assert w in err


def test_unknown_action_names_the_ones_there_are(tmp_path):
    proc = _run(["demo", "--out", str(tmp_path / "o"), "--frames", "2", "--size", "64", "--character", str(BCN),
                 "--action", "Moonwalk"])
    assert proc.returncode == 2
    assert "has no action 'Moonwalk'; it has Epileptisch" in proc.stderr


@pytest.fixture(scope="module")
def bcn_variants(tmp_path_factory):
    """The same public character as .blend and as .fbx (with a light: the importer trap)."""
    out = tmp_path_factory.mktemp("variants")
    code = ("import bpy, sys\nfrom backend.blender.imports import import_character\n"
            "bpy.ops.wm.read_factory_settings(use_empty=True)\nsc = bpy.context.scene\n"
            "import_character(sys.argv[1], sc, fps=24)\n"
            "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2] + '/bcn.blend')\n"
            "lamp = bpy.data.objects.new('Lamp', bpy.data.lights.new('Lamp', 'POINT'))\n"
            "sc.collection.objects.link(lamp)\n"
            "bpy.ops.export_scene.fbx(filepath=sys.argv[2] + '/bcn.fbx', add_leaf_bones=False, bake_anim=True)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(BCN), str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("name", ["bcn.blend", "bcn.fbx"])
def test_demo_character_from_blend_and_fbx(bcn_variants, tmp_path, name):
    out = tmp_path / "out"
    proc = _run(["demo", "--out", str(out), "--frames", "6", "--size", "128", "--character",
                 str(bcn_variants / name)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["character"] == name
    assert metrics["engine"]["ssim"] > metrics["baseline"]["ssim"]


def test_unmappable_bvh_is_one_sentence_and_exit_2(tmp_path):
    snake = tmp_path / "snake.bvh"
    snake.write_text("HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 3 Xrotation Yrotation Zrotation\n JOINT B\n {\n"
                     "  OFFSET 0 1 0\n  CHANNELS 3 Xrotation Yrotation Zrotation\n  End Site\n  {\n   OFFSET 0 1 0\n"
                     "  }\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.04\n0 0 0 0 0 0\n0 0 0 0 10 0\n")
    proc = _run(["demo", "--out", str(tmp_path / "o"), "--frames", "2", "--size", "64", "--character", str(BCN),
                 "--motion", str(snake)])
    assert proc.returncode == 2
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("inhabit demo: ")]
    assert len(line) == 1 and "The BVH skeleton 'snake' cannot be mapped to a body" in line[0]


@pytest.fixture(scope="module")
def odd_units(tmp_path_factory):
    """BCN_Epileptic at other sizes: a centimetre FBX (the armature scaled 100x: 170 units tall) and a
    game-unit glTF (10x: 17 units tall, like the Red Eclipse player)."""
    out = tmp_path_factory.mktemp("units")
    code = ("import bpy, sys\nfrom backend.blender.imports import import_character\n"
            "for scale, name in ((100.0, 'bcn_cm.fbx'), (10.0, 'bcn_tall.glb')):\n"
            "    bpy.ops.wm.read_factory_settings(use_empty=True)\n"
            "    objs = import_character(sys.argv[1], bpy.context.scene, fps=24)\n"
            "    for o in objs:\n"
            "        if o.parent is None:\n"
            "            o.scale = [s * scale for s in o.scale]\n"
            "    path = sys.argv[2] + '/' + name\n"
            "    if name.endswith('.fbx'):\n"
            "        bpy.ops.export_scene.fbx(filepath=path, add_leaf_bones=False, bake_anim=True)\n"
            "    else:\n"
            "        bpy.ops.export_scene.gltf(filepath=path, export_format='GLB')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(BCN), str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("name", ["bcn_cm.fbx", "bcn_tall.glb", "redeclipse_player.glb"])
def test_demo_character_in_any_unit_is_brought_to_human_height(odd_units, tmp_path, name):
    from blender_addon.core import protocol
    out = tmp_path / "out"
    # The Red Eclipse player is a real game character 17.3 units tall (tests/assets/README.md).
    path = RED_ECLIPSE if name == RED_ECLIPSE.name else odd_units / name
    proc = _run(["demo", "--out", str(out), "--frames", "4", "--size", "128", "--character", str(path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The reference is framed on the character: whole, most of the image's height, every body point on it.
    ref = cv2.imread(str(out / "reference.png"), cv2.IMREAD_UNCHANGED)
    ys, xs = np.nonzero(ref[..., 3] > 0)
    assert ys.min() > 0 and ys.max() < ref.shape[0] - 1 and (ys.max() - ys.min()) > 0.7 * ref.shape[0]
    kps = np.asarray(json.loads((out / "reference_keypoints.json").read_text()), np.float32)
    body = [protocol.KEYPOINT_NAMES.index(n) for n in BODY]
    assert (kps[body, 3] == 1).all()
    # In the room the character stands human-sized: its ground-truth silhouette is neither a speck nor the frame.
    blend = out / "demo.blend"
    code = ("import bpy, sys\nbpy.ops.wm.open_mainfile(filepath=sys.argv[1])\n"
            "from blender_addon.scene.rig import find_character_armature, driven_objects\n"
            "sc = bpy.context.scene\narm = find_character_armature(sc)\n"
            "zs = [(o.matrix_world @ v.co).z for o in driven_objects(sc, arm) if o.type == 'MESH'"
            " for v in o.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh().vertices]\n"
            "print('HEIGHT', max(zs) - min(zs))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(blend)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    height = float(next(ln for ln in proc.stdout.splitlines() if ln.startswith("HEIGHT")).split()[1])
    assert 1.3 < height < 2.2, height
