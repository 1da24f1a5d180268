"""The wan-animate engine at speed, on the tiny configuration of the real
diffusers classes: the fast preset (4 distilled steps) end to end, LoRA files in
the published key layouts (tests/wan_lora_files.py), several LoRAs at once,
the step caches (reset per segment and job, the face adapter not counted
twice), and every bad speed choice refused with one sentence before work starts."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from backend.server.engines.base import EngineInputError
from backend.server.engines.wan_animate import WanAnimateEngine
from models.wan.lora_layouts import LoraMismatch
from tests import wan_lora_files as F
from tests.recording_context import RecordingContext
from tests.test_wan_animate import make_job, shot


@pytest.fixture(scope="module")
def tiny_dir(tiny_weights):
    return tiny_weights("wan-animate")


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("loras")
    return {"comfy": F.save(F.comfy_distill(), d / "lightx2v_I2V_14B_480p_cfg_step_distill_rank32_bf16.safetensors"),
            "lightx2v": F.save(F.lightx2v_distill(), d / "wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors"),
            "relight_ckpt": F.save(F.wan_relight(), d / "relighting_lora.ckpt", ckpt=True),
            "relight_comfy": F.save(F.same_weights_in_comfy_names(F.wan_relight()),
                                    d / "WanAnimate_relight_lora_fp16.safetensors"),
            "dir": d}


@pytest.fixture(scope="module")
def fast_engine(tiny_dir, lora_dir):
    e = WanAnimateEngine(device="cpu", weights=str(tiny_dir),
                         options={"distill_lora": lora_dir["comfy"], "relight_lora": lora_dir["relight_ckpt"],
                                  "lora_dir": str(lora_dir["dir"])})
    e.load()
    return e


def run(engine, n=3, **params):
    ref, frames = shot(n)
    ctx = RecordingContext(make_job(n, ref, **params), frames)
    engine.validate(ctx.job)
    engine.run(ctx)
    return ctx


def frames_of(ctx):
    return np.stack([ctx.results[i][0] for i in sorted(ctx.results)]).astype(int)


# -- the fast preset ---------------------------------------------------------------------------------
def test_fast_preset_timesteps_are_lightx2vs_distilled_ones():
    from models.wan.presets import distilled_timesteps, sampling_for
    s = sampling_for("fast", None, steps=20, guidance=5.0)
    assert (s.steps, s.guidance) == (4, 1.0)
    got = s.start("cpu").tolist()
    assert got == pytest.approx(distilled_timesteps(), abs=1e-3)
    assert got == pytest.approx([1000.0, 937.5, 833.333, 625.0], abs=1e-2)
    assert s.scheduler.sigmas[-1].item() == 0.0          # the last step lands on the clean sample


def test_fast_preset_runs_four_steps_with_the_distill_lora(fast_engine):
    fast = run(fast_engine, preset="fast", steps=2, seed=3)
    steps = [c for c in fast.progress_calls if c[0] == "generating"]
    assert {c[4] for c in steps} == {4} and len(steps) == 4        # params.steps ignored, one segment
    again = run(fast_engine, preset="fast", steps=2, seed=3)
    assert np.array_equal(frames_of(fast), frames_of(again))
    # The distillation LoRA is what the preset adds: at strength 0 the same 4 Euler steps differ.
    bare = run(fast_engine, preset="fast", distill_strength=0.0, seed=3)
    assert not np.array_equal(frames_of(fast), frames_of(bare))
    wan = run(fast_engine, preset="wan", steps=4, seed=3)           # the default recipe is untouched afterwards
    plain = WanAnimateEngine(device="cpu", weights=fast_engine.weights)
    plain.load()
    assert np.array_equal(frames_of(wan), frames_of(run(plain, preset="wan", steps=4, seed=3)))


def test_presets_are_in_info_with_expected_seconds_per_frame():
    d = WanAnimateEngine.describe()
    assert d["presets"]["fast"]["steps"] == 4 and d["presets"]["fast"]["expected_s_per_frame"]
    doc = next(p for p in d["params"] if p["name"] == "preset")["doc"]
    assert "s/frame" in doc and p_choices(d, "preset") == ["wan", "fast"]
    names = [o["name"] for o in d["server_options"]]
    assert {"distill_lora", "relight_lora", "compile", "attention", "fp8", "memory"} <= set(names)


def p_choices(d, name):
    return next(p for p in d["params"] if p["name"] == name)["choices"]


# -- LoRA files as published -------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["comfy", "lightx2v", "relight_ckpt", "relight_comfy"])
def test_published_layouts_load_and_fit(fast_engine, lora_dir, layout):
    from models.wan.lora import check_lora
    state = check_lora(fast_engine.pipe, lora_dir[layout])
    converted = fast_engine.pipe.lora_state_dict(dict(state))
    targets = {k.split(".lora_")[0] for k in converted if ".lora_A." in k}
    assert "transformer.blocks.1.attn2.add_k_proj" in targets and "transformer.blocks.0.ffn.net.2" in targets
    if layout == "comfy":   # the embeddings and the head, with the .diff_b biases
        assert {"transformer.proj_out", "transformer.condition_embedder.time_proj",
                "transformer.condition_embedder.image_embedder.ff.net.0.proj"} <= targets
        assert any(k.endswith("lora_B.bias") for k in converted)


def test_relighting_lora_in_wans_ckpt_and_in_comfy_names_is_the_same_lora(fast_engine, lora_dir):
    a = run(fast_engine, lora="relight", seed=2)
    b = run(fast_engine, lora="WanAnimate_relight_lora_fp16.safetensors", seed=2)     # a file of lora_dir
    assert np.abs(frames_of(a) - frames_of(b)).max() <= 1
    assert not np.array_equal(frames_of(a), frames_of(run(fast_engine, seed=2)))


def test_two_loras_at_once_each_with_its_strength(fast_engine):
    both = frames_of(run(fast_engine, preset="fast", lora="relight", lora_strength=1.0, seed=4))
    distill_only = frames_of(run(fast_engine, preset="fast", seed=4))
    relight_off = frames_of(run(fast_engine, preset="fast", lora="relight", lora_strength=0.0, seed=4))
    assert not np.array_equal(both, distill_only)
    assert np.abs(relight_off - distill_only).max() <= 1     # strength 0 = that adapter off, the other on


@pytest.mark.parametrize("make, key, words", [
    # (safetensors stores keys sorted: cross_attn.k is the file's first key of block 2)
    (lambda: F.comfy_distill(blocks=3), "diffusion_model.blocks.2.cross_attn.k.lora_down.weight",
     "adapts blocks.2.attn2.to_k, which this transformer does not have"),
    (lambda: {**F.lightx2v_distill(), "diffusion_model.blocks.0.self_attn.q.lora_A.weight": __import__("torch")
              .zeros(4, 5120)}, "diffusion_model.blocks.0.self_attn.q.lora_A.weight",
     "has shape [4, 5120] where blocks.0.attn1.to_q takes [rank, 24]"),
    (lambda: {"diffusion_model.blocks.0.self_attn.qkv.lora_down.weight": __import__("torch").zeros(4, 24),
              "diffusion_model.blocks.0.self_attn.qkv.lora_up.weight": __import__("torch").zeros(72, 4)},
     "diffusion_model.blocks.0.self_attn.qkv.lora_down.weight", "names no layer of a Wan transformer"),
    (lambda: {"model.layers.0.mlp.lora_A.weight": __import__("torch").zeros(4, 24)},
     "model.layers.0.mlp.lora_A.weight", "is in no Wan LoRA layout"),
])
def test_a_lora_that_does_not_fit_names_its_first_mismatched_key(fast_engine, lora_dir, make, key, words):
    path = F.save(make(), lora_dir["dir"] / "misfit.safetensors")
    ref, frames = shot(2)
    ctx = RecordingContext(make_job(2, ref, lora=os.path.basename(path)), frames)
    fast_engine.validate(ctx.job)
    with pytest.raises(EngineInputError) as e:
        fast_engine.run(ctx)
    msg = str(e.value)
    assert e.value.field == "params.lora" and msg.count("\n") == 0 and not ctx.results
    assert repr(key) in msg and words in msg, msg
    assert frames_of(run(fast_engine, seed=2)).shape[0] == 3       # the pipe is as it was


def test_unreadable_lora_files_are_one_sentence(fast_engine, lora_dir):
    from models.wan.lora import read_lora_file
    bad = lora_dir["dir"] / "garbage.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(LoraMismatch, match="cannot be read as tensors") as e:
        read_lora_file(str(bad))
    assert str(e.value).count("\n") == 0


# -- caching -----------------------------------------------------------------------------------------
CACHE_SHOT = dict(n=6, steps=5, seed=1, segment_length=5, carried_frames=1)     # two segments


@pytest.fixture(scope="module")
def uncached(fast_engine):
    return frames_of(run(fast_engine, **CACHE_SHOT))


@pytest.mark.parametrize("mode", ["first-block", "mag", "taylorseer"])
def test_cache_modes_run_reset_per_segment_and_job(fast_engine, uncached, mode):
    threshold = 0.5 if mode != "taylorseer" else 0.0
    first = run(fast_engine, cache=mode, cache_threshold=threshold, **CACHE_SHOT)
    assert sorted(first.results) == list(range(6))
    assert not fast_engine.pipe.transformer.is_cache_enabled           # off again after the job
    again = run(fast_engine, cache=mode, cache_threshold=threshold, **CACHE_SHOT)
    assert np.array_equal(frames_of(first), frames_of(again))          # no state leaks from one job to the next
    assert not np.array_equal(frames_of(first), uncached)              # the cache did skip work


@pytest.mark.parametrize("mode", ["first-block", "mag"])
def test_cached_step_does_not_count_the_face_adapter_twice(fast_engine, mode):
    """Two identical calls: the second is served from the cache and must equal the first exactly;
    diffusers' hooks alone (no face-adapter guard) add the adapters' output a second time."""
    import torch

    from models.wan import cache
    tr = fast_engine.pipe.transformer
    g = torch.Generator().manual_seed(0)
    kw = dict(hidden_states=torch.randn(1, 36, 3, 8, 8, generator=g), timestep=torch.tensor([500.0]),
              encoder_hidden_states=torch.randn(1, 16, 32, generator=g),
              encoder_hidden_states_image=torch.randn(1, 4, 4, generator=g),
              pose_hidden_states=torch.randn(1, 16, 2, 8, 8, generator=g),
              face_pixel_values=torch.randn(1, 3, 5, 16, 16, generator=g), return_dict=False)

    def twice():
        outs = []
        with torch.no_grad():
            for _ in range(2):
                with tr.cache_context("cond"):
                    outs.append(tr(**kw)[0])
        return outs
    try:
        cache.enable(tr, mode, 0.9, 2)
        a, b = twice()
        assert torch.allclose(a, b, atol=1e-5)
        cache.disable(tr)
        cache.register_animate_block()
        tr.enable_cache(cache.make_config(mode, 0.9, 2))                 # without the guard
        a, b = twice()
        assert not torch.allclose(a, b, atol=1e-3)
    finally:
        cache.disable(tr)


# -- bad input, before anything long -----------------------------------------------------------------
def test_fast_preset_without_its_lora_is_refused_at_validate(tiny_dir):
    e = WanAnimateEngine(device="cpu", weights=str(tiny_dir))       # not loaded: validate needs no model
    ref, _ = shot(2)
    with pytest.raises(EngineInputError, match="distill_lora") as err:
        e.validate(make_job(2, ref, preset="fast"))
    assert err.value.field == "params.preset" and str(err.value).count("\n") == 0
    with pytest.raises(EngineInputError, match="relight_lora") as err:
        e.validate(make_job(2, ref, lora="relight"))
    assert err.value.field == "params.lora"


def test_cache_mode_check_names_the_fix():
    from models.wan.cache import MODES, mode_problem
    assert all(mode_problem(m) is None for m in MODES)                 # diffusers 0.42 has all three
    assert "params.cache must be one of" in mode_problem("teacache")


@pytest.mark.parametrize("option, words", [("attention=sage", "needs a CUDA GPU"),
                                           ("distill_lora=/nonexistent/x.safetensors", "is not a file")])
def test_serve_refuses_speed_options_this_machine_cannot_run(tiny_dir, option, words):
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--engine", "wan-animate", "--weights",
                           str(tiny_dir), "--engine-option", option, "--bind", "tcp://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and words in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr


# -- doctor ------------------------------------------------------------------------------------------
def test_doctor_recommends_the_fastest_setup(tmp_path):
    from tests.cli import inhabit
    proc = inhabit("doctor", "--engine", "wan-animate", "--frames", "1", "--steps", "1", timeout=180)
    assert proc.returncode == 0 and "preset=fast" in proc.stdout and "s/frame" in proc.stdout, proc.stdout

    import json

    from models.wan import advice
    lines = advice.recommend("cuda:0", check_compiler=False)     # what a GPU box without extras is told
    assert "--engine-option distill_lora=PATH --engine-option fp8=on" in lines[0] and "preset=fast" in lines[0]
    assert "projected" in lines[1] and any("sage is not recommended" in line for line in lines)
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"device": "NVIDIA H200", "rows": [
        {"label": "20 steps (Wan's recipe, UniPC)", "s_per_frame": 1.0}, {"label": "4 steps", "s_per_frame": 0.2}]}))
    assert advice.measured_rows(str(rows))["rows"][1]["s_per_frame"] == 0.2
    assert advice.measured_rows(str(tmp_path / "none.json")) is None


def test_compile_at_load_then_jobs_compile_nothing_and_match_eager(tiny_dir, lora_dir, fast_engine):
    """--engine-option compile=on: the repeated blocks are compiled at load, for both presets'
    adapter states and the job's token counts, so the first job compiles nothing more."""
    from torch._dynamo.utils import counters
    e = WanAnimateEngine(device="cpu", weights=str(tiny_dir), options={"distill_lora": lora_dir["comfy"],
                                                                      "compile": True})
    e.load()
    graphs = counters["stats"]["unique_graphs"]
    fast, wan = run(e, preset="fast", seed=3), run(e, preset="wan", steps=2, seed=3)
    assert counters["stats"]["unique_graphs"] == graphs
    # fast_engine: the same distillation LoRA, eager (its relighting slot stays off for these jobs)
    assert np.abs(frames_of(fast) - frames_of(run(fast_engine, preset="fast", seed=3))).max() <= 1
    assert np.abs(frames_of(wan) - frames_of(run(fast_engine, preset="wan", steps=2, seed=3))).max() <= 1


def test_fp8_option_stores_the_blocks_in_fp8_and_keeps_the_loras(tiny_dir, lora_dir):
    """Without torchao (this machine) fp8=on is diffusers' layerwise casting; the LoRA slots load after it."""
    import torch

    from models.wan.accel import fp8_method
    assert fp8_method("cpu") == "layerwise"
    e = WanAnimateEngine(device="cpu", weights=str(tiny_dir), options={"distill_lora": lora_dir["comfy"], "fp8": True})
    e.load()
    q = e.pipe.transformer.blocks[0].attn1.to_q
    assert q.base_layer.weight.dtype == torch.float8_e4m3fn and q.lora_A["distill"].weight.dtype == torch.float32
    fast = run(e, preset="fast", seed=3)
    assert sorted(fast.results) == [0, 1, 2]
    e.options["lora_dir"] = str(lora_dir["dir"])           # a job's own file would be cast to fp8 by peft: refused
    ref, _ = shot(2)
    with pytest.raises(EngineInputError, match="fp8") as err:
        e.validate(make_job(2, ref, lora="WanAnimate_relight_lora_fp16.safetensors"))
    assert err.value.field == "params.lora"
