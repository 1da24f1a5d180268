"""The wan-animate engine on the tiny configuration of the real diffusers
classes: input preparation against Wan's spec, segment planning, the engine
in process (determinism, cancel, exact environment, bad inputs), and whole
jobs through real sockets (``inhabit serve`` subprocess + the client)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from backend.server.engines import registry
from backend.server.engines.base import EngineInputError, JobCancelled, AdmittedJob
from backend.server.engines.wan_animate import WanAnimateEngine
from blender_addon.core import conventions, protocol
from models.wan import inputs as I
from models.wan import pose as P
from models.wan.segments import plan_segments
from tests.recording_context import RecordingContext

SIZE = 64


# -- pose drawing against Wan's draw_aapose_new ---------------------------------------------------
def _keypoints(cx=32.0, top=10.0, scale=1.0, vis=1.0):
    kp = np.zeros((18, 4), np.float32)
    pts = {0: (0, 0), 1: (0, 6), 2: (-6, 6), 3: (-9, 14), 4: (-10, 22), 5: (6, 6), 6: (9, 14), 7: (10, 22),
           8: (-4, 24), 9: (-4, 34), 10: (-4, 44), 11: (4, 24), 12: (4, 34), 13: (4, 44),
           14: (-2, -2), 15: (2, -2), 16: (-4, -1), 17: (4, -1)}
    for j, (dx, dy) in pts.items():
        kp[j] = (cx + dx * scale, top + dy * scale, 3.0, vis)
    return kp


def test_wan_body_mapping_neck_is_shoulder_midpoint_toes_absent():
    kp = _keypoints()
    kp[1, :2] = (0, 0)                      # a rig's neck bone elsewhere: Wan's neck is the shoulders' mean
    body = P.wan_body_from_openpose18(kp, SIZE, SIZE)
    assert body.shape == (20, 3)
    assert np.allclose(body[1, :2], (kp[2, :2] + kp[5, :2]) / 2) and body[1, 2] == 1
    assert np.allclose(body[[0, 2, 14, 17], :2], kp[[0, 2, 14, 17], :2])
    assert (body[18:, 2] == 0).all()        # toes: absent unless the frame carries toe_keypoints
    toes = np.array([[30, 50, 3.0, 1.0], [20, 50, 3.0, 0.5]], np.float32)   # left, right (occluded still drawn)
    with_toes = P.wan_body_from_openpose18(kp, SIZE, SIZE, toes)
    assert np.allclose(with_toes[18], (30, 50, 1)) and np.allclose(with_toes[19], (20, 50, 1))
    kp[4, :2] = (-5, 10)                    # off-frame joint: not drawn
    assert P.wan_body_from_openpose18(kp, SIZE, SIZE)[4, 2] == 0


def test_pose_drawing_follows_wan_spec():
    kp = _keypoints()
    img = P.draw_pose(kp, SIZE, SIZE)
    assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3)
    assert P.stick_width(SIZE, SIZE) == 1 and P.stick_width(720, 1280) == 2 and P.stick_width(480, 832) == 1
    # Joints: full colour discs at the (truncated) position; limbs at 0.6 of their colour.
    x, y = int(kp[0, 0]), int(kp[0, 1])
    assert tuple(img[y, x]) == P.WAN_COLORS[0]
    rx, ry = int(kp[4, 0]), int(kp[4, 1])
    assert tuple(img[ry, rx]) == P.WAN_COLORS[4]
    mid = ((kp[9, :2] + kp[10, :2]) / 2).astype(int)   # right lower leg = limb 8
    assert tuple(img[mid[1], mid[0]]) == tuple(int(c * 0.6) for c in P.WAN_COLORS[8])
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    allowed = {(0, 0, 0)} | set(P.WAN_COLORS) | {tuple(int(c * 0.6) for c in col) for col in P.WAN_COLORS}
    assert colours <= allowed                # no anti-aliasing, only Wan's palette
    assert P.draw_pose(_keypoints(vis=0.0), SIZE, SIZE).max() == 0
    # hand_keypoints [42, 4] as the protocol sends them: left hand rows 0-20, right hand absent.
    hands = np.zeros((42, 4), np.float32)
    hands[:21] = [[20 + i, 20 + (i % 4), 3.0, 1.0] for i in range(21)]
    with_hand = P.draw_pose(kp, SIZE, SIZE, hands=hands)
    assert tuple(with_hand[20, 20]) == P.HAND_DOT
    assert (P.draw_pose(kp, SIZE, SIZE, hands=np.zeros((42, 4), np.float32)) == img).all()


# -- mask, background, face, letterbox -------------------------------------------------------------
def test_mask_is_dilated_coarsened_and_snapped_to_the_latent_grid():
    matte = np.zeros((SIZE, SIZE), np.uint8)
    matte[21:37, 27:33] = 255
    m = I.generation_mask(matte)
    assert (m[matte > 0] == 255).all() and m.sum() > matte.sum()
    cells = m.reshape(SIZE // 8, 8, SIZE // 8, 8)
    assert ((cells.min(axis=(1, 3)) == cells.max(axis=(1, 3)))).all()   # every 8x8 cell all on or all off
    assert I.generation_mask(np.zeros_like(matte)).max() == 0
    blocky = I.generation_mask(matte, block=4)
    assert blocky.sum() <= m.sum()
    env = np.full((SIZE, SIZE, 3), 77, np.uint8)
    bg = I.black_out(env, m)
    assert (bg[m > 0] == 0).all() and (bg[m == 0] == 77).all()
    assert np.array_equal(I.snap_to_grid(np.pad(np.ones((1, 1)), ((8, 7), (9, 6)))),
                          np.pad(np.full((8, 8), 255), ((8, 0), (8, 0))).astype(np.uint8))


def test_face_crop_follows_the_head_and_is_null_without_one():
    img = np.zeros((SIZE * 2, SIZE * 2, 3), np.uint8)
    boxes = []
    for cx in (40.0, 80.0):
        kp = _keypoints(cx=cx, top=30.0, scale=2.0)
        box = I.face_box(kp, SIZE * 2, SIZE * 2)
        x1, x2, y1, y2 = box
        assert x1 < kp[16, 0] and x2 > kp[17, 0] and y1 < kp[14, 1] < y2   # ears and eyes inside
        boxes.append(box)
    assert boxes[1][0] - boxes[0][0] == pytest.approx(40, abs=1)          # moved with the head
    img[30:40, 75:85] = 200
    crop = I.crop_face(img, boxes[1], 16)
    assert crop.shape == (16, 16, 3) and crop.max() == 200
    assert I.face_box(_keypoints(vis=0.0), SIZE, SIZE) is None
    assert I.crop_face(img, None, 16).max() == 0                           # Wan's null face


def test_letterbox_keeps_aspect_on_black():
    ref = np.full((40, 20, 4), 255, np.uint8)
    ref[:, :, 3] = 0
    ref[10:30, 5:15, 3] = 255
    out = I.letterbox(ref, 32, 64)
    assert out.shape == (32, 64, 3)
    assert out[:, :24].max() == 0 and out[:, 40:].max() == 0              # 16 px wide image centred in 64
    assert out[16, 32].min() == 255 and out[1, 32].max() == 0             # transparent -> black


# -- segments ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, expect", [
    (1, [(0, 1, 0, 1)]), (2, [(0, 5, 0, 2)]), (5, [(0, 5, 0, 5)]), (76, [(0, 77, 0, 76)]),
    (77, [(0, 77, 0, 77)]), (78, [(0, 77, 0, 77), (72, 9, 5, 78)]),
    (200, [(0, 77, 0, 77), (72, 77, 5, 149), (144, 57, 5, 200)])])
def test_segment_plan(n, expect):
    plan = plan_segments(n, 77, 5)
    assert [(s.start, s.length, s.carried, s.end) for s in plan] == expect
    emitted = [i for s in plan for i in s.new_frames]
    assert emitted == list(range(n))                                     # each frame exactly once
    assert all((s.length - 1) % 4 == 0 for s in plan)


def test_segment_plan_small_segments_with_five_carried():
    # The pipeline's own count crashes at 17 frames, S=9, P=5.
    plan = plan_segments(17, 9, 5)
    assert [i for s in plan for i in s.new_frames] == list(range(17)) and len(plan) == 3
    assert [(s.start, s.length) for s in plan_segments(5, 5, 5)] == [(0, 5)]   # one segment carries nothing
    with pytest.raises(ValueError):
        plan_segments(10, 6, 1)
    with pytest.raises(ValueError):
        plan_segments(10, 5, 5)


# -- the engine in process -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dir(tiny_weights):
    return tiny_weights("wan-animate")


@pytest.fixture(scope="module")
def engine(tiny_dir):
    e = WanAnimateEngine(device="cpu", weights=str(tiny_dir))
    e.load()
    return e


def shot(n, *, empty=()):
    from models.aa2.tiny import tiny_inputs
    inp = tiny_inputs(n, SIZE, SIZE, with_objects=False)
    frames = []
    for i in range(n):
        kp = _keypoints(cx=24.0 + 2 * i, top=12.0)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        if i not in empty:
            mask[10:58, 14 + 2 * i:36 + 2 * i] = 255
        else:
            kp[:, 3] = 0
        frames.append({"environment": inp["environment"][i], "character_mask": mask, "keypoints": kp,
                       "character_depth": np.where(mask > 0, 3.0, conventions.NO_SURFACE_DEPTH).astype(np.float32),
                       "scene_depth": inp["scene_depth"][i]})
    return inp["reference"], frames


def make_job(n, ref, **params):
    p = protocol.validate_params((*protocol.COMMON_PARAMS, *WanAnimateEngine.params),
                                 {"steps": 2, "segment_length": 5, "carried_frames": 1, **params})
    return AdmittedJob(job_id="w1", engine="wan-animate", width=SIZE, height=SIZE, frames=n, params=p, reference=ref)


def run_engine(engine, n, **params):
    ref, frames = shot(n)
    ctx = RecordingContext(make_job(n, ref, **params), frames)
    engine.validate(ctx.job)
    engine.run(ctx)
    return ctx, frames


def test_engine_is_registered_and_described():
    assert registry.get("wan-animate") is WanAnimateEngine
    d = WanAnimateEngine.describe()
    names = [p["name"] for p in d["params"]]
    for n in ("seed", "steps", "guidance", "segment_length", "carried_frames", "resolution", "prompt", "lora",
              "lora_strength"):
        assert n in names
    assert d["memory_tiers"][0] == "auto" and "sequential" in d["memory_tiers"]
    assert d["expected_s_per_frame"]["H100 832x480"] > 0
    code = ("import sys, backend.server.engines.wan_animate as m; m.WanAnimateEngine.describe(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_two_segments_stream_with_progress_and_exact_environment(engine):
    ctx, frames = run_engine(engine, 8)               # S=5, P=1: segments [0,5) and [4,9)->[4,8)
    assert sorted(ctx.results) == list(range(8)) and ctx.released == 8
    steps = [c for c in ctx.progress_calls if c[0] == "generating"]
    assert len(steps) == 2 * 2 and steps[-1][1] == pytest.approx(1.0)
    for i, f in enumerate(frames):
        rgba, matte = ctx.results[i]
        region = I.generation_mask(f["character_mask"])
        outside = region == 0
        assert np.array_equal(rgba[..., :3][outside], f["environment"][outside])   # bit-exact outside the mask
        assert (matte[outside] == 0).all() and matte.max() > 0


def test_same_seed_same_frames_other_seed_differs(engine):
    a, _ = run_engine(engine, 3, seed=5)
    b, _ = run_engine(engine, 3, seed=5)
    c, _ = run_engine(engine, 3, seed=6)
    assert all(np.array_equal(a.results[i][0], b.results[i][0]) for i in range(3))
    assert not np.array_equal(a.results[1][0], c.results[1][0])


def test_matches_the_pipelines_own_call_for_one_segment(engine):
    # Driving the pipeline segment by segment must not change what it generates.
    import torch
    from PIL import Image

    from models.wan.generate import SegmentInputs, ShotGenerator
    pipe = engine.pipe
    ref, frames = shot(5)
    mask = [I.generation_mask(f["character_mask"]) for f in frames]
    env = [f["environment"] for f in frames]
    bg = [I.black_out(e, m) for e, m in zip(env, mask)]
    pose = [P.draw_pose(f["keypoints"], SIZE, SIZE) for f in frames]
    face = [np.zeros((16, 16, 3), np.uint8)] * 5
    refl = I.letterbox(ref, SIZE, SIZE)
    emb = torch.zeros(1, 16, 32)
    pil = lambda xs: [Image.fromarray(x) for x in xs]  # noqa: E731
    theirs = pipe(image=Image.fromarray(refl), pose_video=pil(pose), face_video=pil(face), background_video=pil(bg),
                  mask_video=pil(mask), prompt_embeds=emb, mode="replace", height=SIZE, width=SIZE,
                  segment_frame_length=5, num_inference_steps=2, generator=torch.Generator().manual_seed(4),
                  output_type="np").frames[0]
    gen = ShotGenerator(pipe, height=SIZE, width=SIZE, steps=2, guidance=1.0, seed=4, prompt_embeds=emb,
                        clip_squash=False)   # the pipeline's own CLIP input (centre crop)
    gen.set_reference(refl)
    ours = gen.segment(plan_segments(5, 5, 1)[0], SegmentInputs(pose, face, bg, mask, env))
    assert np.abs(ours.astype(int) - np.rint(theirs * 255).astype(int)).max() <= 1


def test_cancel_mid_segment_stops_within_a_step(engine):
    ref, frames = shot(8)
    ctx = RecordingContext(make_job(8, ref, steps=3), frames, cancel_at_step=2)
    with pytest.raises(JobCancelled):
        engine.run(ctx)
    assert ctx.checks == 3 and not ctx.results       # the first segment never finished


def test_one_frame_shot_and_frames_without_the_character(engine):
    ctx, frames = run_engine(engine, 1, segment_length=77, carried_frames=5)
    assert list(ctx.results) == [0]
    ref, frames = shot(3, empty=(1,))
    ctx = RecordingContext(make_job(3, ref), frames)
    engine.run(ctx)
    rgba, matte = ctx.results[1]
    assert np.array_equal(rgba[..., :3], frames[1]["environment"]) and matte.max() == 0


def test_working_resolution_is_resized_back_to_the_shot(engine):
    ctx, frames = run_engine(engine, 2, resolution="32x48")
    rgba, _ = ctx.results[0]
    assert rgba.shape == (SIZE, SIZE, 4)
    outside = cv2_nearest(I.generation_mask(cv2_nearest(frames[0]["character_mask"], 32, 48)), SIZE, SIZE) == 0
    assert np.array_equal(rgba[..., :3][outside], frames[0]["environment"][outside])


def cv2_nearest(a, w, h):
    import cv2
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("params, field", [
    ({"resolution": "100x64"}, "params.resolution"),
    ({"resolution": "wide"}, "params.resolution"),
    ({"segment_length": 6}, "params.segment_length"),
    ({"carried_frames": 3}, "params.carried_frames"),
    ({"segment_length": 1, "carried_frames": 1}, "params.segment_length"),
    ({"lora": "/nonexistent/lora.safetensors"}, "params.lora"),
    ({"resolution": "4096x2048"}, "params.resolution"),
    ({"resolution": "9" * 5000 + "x16"}, "params.resolution"),
    ({"face": "reference"}, "submit.reference_keypoints"),
])
def test_bad_params_name_the_field(engine, params, field):
    ref, _ = shot(2)
    with pytest.raises(EngineInputError) as e:
        engine.validate(make_job(2, ref, **params))
    assert e.value.field == field and str(e.value).count("\n") == 0


def test_lora_is_only_a_file_the_server_offers(engine, tmp_path, monkeypatch):
    # A job names a LoRA of the server's folder, never a path: whether /etc/passwd
    # exists or not, the answer is the same sentence.
    ref, _ = shot(2)
    (tmp_path / "relight.safetensors").write_bytes(b"")
    for folder, name, words in (("", "relight.safetensors", "offers no LoRA"),
                                (str(tmp_path), "/etc/passwd", "one of this server's LoRAs (relight.safetensors)"),
                                (str(tmp_path), "/no/such/file.safetensors", "one of this server's LoRAs"),
                                (str(tmp_path), "../relight.safetensors", "one of this server's LoRAs")):
        monkeypatch.setitem(engine.options, "lora_dir", folder)
        with pytest.raises(EngineInputError, match="params.lora") as e:
            engine.validate(make_job(2, ref, lora=name))
        assert words in str(e.value) and e.value.field == "params.lora"
    monkeypatch.setitem(engine.options, "lora_dir", str(tmp_path))
    engine.validate(make_job(2, ref, lora="relight.safetensors"))


def test_shot_not_divisible_by_16_is_refused_with_a_fix(engine):
    ref, _ = shot(2)
    job = make_job(2, ref)
    job.width = 72
    with pytest.raises(EngineInputError, match="divisible by 16") as e:
        engine.validate(job)
    assert e.value.field == "params.resolution" and "64x64" in str(e.value)


def test_missing_frame_input_is_refused_by_the_server_from_the_declaration():
    """The one check of frame inputs is the server's, from what the engine declares."""
    from backend.server.admission import check_frame
    from backend.server.job import ServerJob
    ref, frames = shot(2)
    del frames[1]["keypoints"]
    job = ServerJob(make_job(2, ref), b"client", WanAnimateEngine, window=4)
    assert check_frame(job, {"index": 0}, frames[0]) == 0
    with pytest.raises(protocol.ProtocolError) as e:
        check_frame(job, {"index": 1}, frames[1])
    assert e.value.code == protocol.E_MISSING_INPUT and e.value.field == "frame.keypoints"


def test_lora_that_does_not_fit_is_refused_before_generation(engine, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file
    bad = tmp_path / "other_model_lora.safetensors"
    save_file({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 7),
               "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(24, 4)}, str(bad))
    ref, frames = shot(2)
    monkeypatch.setitem(engine.options, "lora_dir", str(tmp_path))
    ctx = RecordingContext(make_job(2, ref, lora=bad.name), frames)
    engine.validate(ctx.job)
    with pytest.raises(EngineInputError, match="does not fit") as e:
        engine.run(ctx)
    assert e.value.field == "params.lora" and ctx.checks == 0 and not ctx.results


def test_lora_that_fits_changes_the_frames(engine, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file
    good = tmp_path / "wan_lora.safetensors"
    torch.manual_seed(0)
    save_file({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.randn(4, 24),
               "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.randn(24, 4)}, str(good))
    plain, _ = run_engine(engine, 2, seed=1)
    monkeypatch.setitem(engine.options, "lora_dir", str(tmp_path))
    lora, _ = run_engine(engine, 2, seed=1, lora=good.name, lora_strength=1.0)
    off, _ = run_engine(engine, 2, seed=1)
    assert not np.array_equal(plain.results[0][0], lora.results[0][0])
    assert np.array_equal(plain.results[0][0], off.results[0][0])


# -- weights folders -------------------------------------------------------------------------------
def _check(path):
    return subprocess.run([sys.executable, "-m", "backend.cli", "weights", "check", str(path)], capture_output=True,
                          text=True, timeout=60)


def test_weights_check_recognises_wan_and_names_missing_parts(tiny_dir, tmp_path):
    ok = _check(tiny_dir)
    assert ok.returncode == 0 and "Wan-Animate" in ok.stdout and "ok    transformer" in ok.stdout
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    shutil.rmtree(broken / "vae")
    (broken / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    out = _check(broken)
    assert out.returncode == 1
    errors = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2 and any("vae" in e for e in errors) and any("transformer" in e for e in errors)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    from models.wan.loading import WeightsFolderError, check_or_raise
    with pytest.raises(WeightsFolderError, match="not Wan-Animate"):
        check_or_raise(str(other))
    with pytest.raises(WeightsFolderError, match="no model_index.json"):
        check_or_raise(str(tmp_path))


@pytest.mark.parametrize("kind, words", [("other", "not Wan-Animate"), ("incomplete", "transformer"),
                                         ("missing", "not a folder")])
def test_serve_refuses_a_bad_weights_folder_before_listening(tiny_dir, tmp_path, kind, words):
    import shutil
    folder = tmp_path / "w"
    if kind == "other":
        folder.mkdir()
        (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    elif kind == "incomplete":
        shutil.copytree(tiny_dir, folder)
        shutil.rmtree(folder / "transformer")
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--engine", "wan-animate", "--weights",
                           str(folder), "--bind", "tcp://127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and words in proc.stderr and "listening" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    if kind == "incomplete":
        from models.wan.loading import WeightsFolderError
        with pytest.raises(WeightsFolderError, match="transformer"):
            WanAnimateEngine(device="cpu", weights=str(folder)).load()


def test_served_over_zeromq_end_to_end(tiny_dir):
    from blender_addon.core.client import Client, run_job
    from tests.serverproc import start_server

    ref, frames = shot(6)
    spec = protocol.JobSpec(engine="wan-animate", width=SIZE, height=SIZE, frames=6,
                            params={"steps": 1, "segment_length": 5, "carried_frames": 1, "seed": 2})
    with start_server(engines=("wan-animate",), weights=tiny_dir, startup_timeout=60) as srv:
        with Client(srv.address) as cl:
            info = cl.info()
            entry = next(e for e in info["engines"] if e["name"] == "wan-animate")
            assert "memory_tiers" in entry
            events = run_job(cl, spec, ref, enumerate(frames), timeout=90)
        assert events[-1].type == protocol.DONE, srv.log()
    results = {e.header["index"]: e.arrays for e in events if e.type == protocol.RESULT}
    assert sorted(results) == list(range(6))
    order = [e.header["index"] for e in events if e.type == protocol.RESULT]
    assert order[:5] == [0, 1, 2, 3, 4]        # the first segment arrives before the second is generated


def test_resave_bf16_halves_the_transformer_and_still_loads(tiny_dir, tmp_path):
    from models.wan.resave import keep_fp32_modules
    from models.wan.weights_check import safetensors_headers
    dst = tmp_path / "bf16"
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "weights", "resave-bf16", str(tiny_dir), str(dst)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tensors, size = safetensors_headers(str(dst / "transformer"))
    _, before = safetensors_headers(str(tiny_dir / "transformer"))
    keep = keep_fp32_modules()
    for key, meta in tensors.items():
        kept = any(m in key.split(".") for m in keep)
        assert meta["dtype"] == ("F32" if kept else "BF16"), key
    assert size < 0.6 * before
    assert _check(dst).returncode == 0
    again = subprocess.run([sys.executable, "-m", "backend.cli", "weights", "resave-bf16", str(tiny_dir), str(dst)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stdout
    e = WanAnimateEngine(device="cpu", weights=str(dst))
    e.load()
    ref, frames = shot(2)
    ctx = RecordingContext(make_job(2, ref), frames)
    e.run(ctx)
    assert sorted(ctx.results) == [0, 1]


def test_reference_face_follows_the_head_into_the_face_video(engine):
    ref = np.zeros((64, 64, 3), np.uint8)
    ref[4:20, 24:40] = (250, 200, 150)               # the reference's face
    ref_kp = _keypoints(cx=32.0, top=10.0)           # head at y 8-10, over the face patch
    _, frames = shot(3)
    frames[2]["keypoints"][[0, 14, 15, 16, 17], 3] = 0   # head out of view on frame 2
    job = make_job(3, ref, face="reference")
    job.reference_keypoints = ref_kp
    engine.validate(job)
    face_size = engine.pipe.transformer.config.motion_encoder_size
    prepared = [engine._prepare(i, frames[i], SIZE, SIZE, face_size,
                                engine._reference_face(job, I.letterbox(ref, SIZE, SIZE), SIZE, SIZE, face_size),
                                job.params) for i in range(3)]
    assert prepared[0]["face"].max() > 100 and prepared[0]["face"].shape == (face_size, face_size, 3)
    assert prepared[2]["face"].max() == 0            # head not visible: Wan's null face
    ctx = RecordingContext(job, frames)
    engine.run(ctx)
    assert sorted(ctx.results) == [0, 1, 2]


@pytest.mark.parametrize("free_gb, tier", [(139, "full"), (50, "model-offload"), (24, "group-offload"),
                                           (12, "sequential"), (4, "sequential"), (None, "full")])
def test_memory_tier_from_free_vram(free_gb, tier):
    from backend.server.engines.wan_animate_doctor import REAL_INNER_DIM, REAL_OTHER_PARAMS, REAL_TRANSFORMER_PARAMS
    from models.wan import memory as M
    needs = M.estimate(int(REAL_TRANSFORMER_PARAMS), int(REAL_OTHER_PARAMS), REAL_INNER_DIM, 480, 832, 77)
    assert needs["full"] > needs["model-offload"] > needs["group-offload"] > needs["sequential"]
    chosen, why = M.choose_tier(None if free_gb is None else free_gb * 1e9, needs)
    assert chosen == tier and why
    big = M.estimate(int(REAL_TRANSFORMER_PARAMS), int(REAL_OTHER_PARAMS), REAL_INNER_DIM, 720, 1280, 77)
    assert big["full"] > needs["full"]              # more tokens, more memory


def test_cached_prompt_needs_no_text_encoder(tiny_dir, tmp_path):
    import shutil

    from models.wan.prompts import DEFAULT_PROMPT, PromptCache, prompt_embeddings
    copy = tmp_path / "no_text_encoder"
    shutil.copytree(tiny_dir, copy)
    cache = PromptCache(str(copy), str(tmp_path / "cache"))
    first = prompt_embeddings(str(copy), DEFAULT_PROMPT, cache=cache)    # embeds once, caches in the server's folder
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".safetensors"]
    assert not (copy / ".inhabit_prompt_cache").exists()                # nothing written into the weights
    shutil.rmtree(copy / "text_encoder")
    again = prompt_embeddings(str(copy), DEFAULT_PROMPT, cache=cache)    # from the cache: no encoder needed
    assert np.array_equal(first.numpy(), again.numpy())
    e = WanAnimateEngine(device="cpu", weights=str(copy), options={"prompt_cache": str(tmp_path / "cache")})
    e.load()
    ref, frames = shot(2)
    ctx = RecordingContext(make_job(2, ref), frames)
    e.run(ctx)
    assert sorted(ctx.results) == [0, 1]
    with pytest.raises(EngineInputError, match="text_encoder") as err:
        e.run(RecordingContext(make_job(2, ref, prompt="a person dances"), frames))
    assert err.value.field == "params.prompt"
    with pytest.raises(EngineInputError, match="not cached on this server") as err:
        e.validate(make_job(2, ref, prompt="a person dances"))   # refused at SUBMIT already
    assert err.value.field == "params.prompt"
    e.validate(make_job(2, ref))                                 # Wan's own prompt is cached


def test_prompt_cache_keeps_under_its_cap_and_never_drops_wan_s_own_prompt(tiny_dir, tmp_path):
    from models.wan.prompts import DEFAULT_PROMPT, PromptCache, cache_key, prompt_embeddings
    folder = tmp_path / "cache"
    one = PromptCache(str(tiny_dir), str(folder))
    prompt_embeddings(str(tiny_dir), DEFAULT_PROMPT, cache=one)
    size = next(folder.iterdir()).stat().st_size
    capped = PromptCache(str(tiny_dir), str(folder), cap_bytes=3 * size)
    for k in range(5):
        prompt_embeddings(str(tiny_dir), f"prompt number {k}", cache=capped)
    files = sorted(folder.iterdir())
    assert len(files) == 3 and sum(f.stat().st_size for f in files) <= 3 * size
    names = {f.name for f in files}
    assert cache_key(str(tiny_dir), DEFAULT_PROMPT, 512) + ".safetensors" in names      # Wan's own prompt is kept
    assert cache_key(str(tiny_dir), "prompt number 4", 512) + ".safetensors" in names   # and the newest
    assert cache_key(str(tiny_dir), "prompt number 0", 512) + ".safetensors" not in names


def test_colour_matching_removes_a_segment_wide_shift_and_seam_ratio_sees_it():
    import torch

    from models.wan.seams import match_to_carried, seam_ratio
    torch.manual_seed(0)
    carried = torch.rand(1, 3, 5, 16, 16) * 1.6 - 0.8
    video = torch.cat([carried, carried[:, :, -1:].repeat(1, 1, 4, 1, 1)], dim=2) * 0.7 + 0.2   # shifted segment
    mask = torch.ones(1, 1, 5, 16, 16)
    fixed = match_to_carried(video, carried, mask)
    assert torch.allclose(fixed[:, :, :5], carried, atol=1e-4)
    # A video whose second half is shifted has a seam at the boundary, and not without the shift.
    frames = np.repeat(np.linspace(100, 110, 10)[:, None, None, None], 4, 1).repeat(4, 2).repeat(3, 3)
    frames = frames + np.random.default_rng(0).normal(0, 0.5, frames.shape)
    assert seam_ratio(frames, [5]) < 2.0
    shifted = frames.copy()
    shifted[5:] += 20
    assert seam_ratio(shifted, [5]) > 5.0
