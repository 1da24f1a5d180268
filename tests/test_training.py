"""``inhabit train``: one step's gradients, checkpoints served as they are, exact resume,
a 2-process accelerate run, and one sentence for each bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from backend.cli.local_server import REPO_ROOT
from backend.training import loop
from backend.training.model import TRAINABLE, AA2Trainee, VAETrainee, is_motion
from backend.training.stream import ClipStream
from blender_addon.core import protocol
from models.aa2.tiny import tiny_pipeline


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Two shared cores: OpenMP spin-waits make 2-thread steps many times slower here.
    # Other modules switch autograd off at import (test_models.py); training needs it.
    n, grad = torch.get_num_threads(), torch.is_grad_enabled()
    torch.set_num_threads(1)
    torch.set_grad_enabled(True)
    yield
    torch.set_num_threads(n)
    torch.set_grad_enabled(grad)


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))


def _batch(data, window, n=2):
    it = iter(ClipStream(str(data), "train", window=window, drop_reference=0.0))
    batch = [next(it) for _ in range(n)]
    assert any(np.any(f["object_labels"]) for s in batch for f in s["frames"]), "a prop must be in view"
    return batch


@pytest.mark.parametrize("stage", [1, 2])
def test_one_step_reaches_every_trainable_module_and_no_frozen_one(tiny_dataset, stage):
    pipe = tiny_pipeline(0)
    model = AA2Trainee(pipe, stage)
    loss = model(_batch(tiny_dataset, 1 if stage == 1 else 3), noise_seed=1)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    model.release_hooks()
    modules = TRAINABLE if stage == 1 else ("denoising_unet",)
    for name in modules:
        params = [(n, p) for n, p in getattr(model, name).named_parameters() if p.requires_grad]
        assert params, name
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in params), f"no gradient reaches {name}"
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"frozen {n} got a gradient"
    for m in (pipe.vae, pipe.image_encoder):
        assert all(p.grad is None for p in m.parameters())
    motion = [n for n, p in model.denoising_unet.named_parameters() if is_motion(n)]
    trainable = {n for n, p in model.denoising_unet.named_parameters() if p.requires_grad}
    assert motion and (set(motion) == trainable if stage == 2 else not trainable & set(motion))


def test_stage0_fits_the_autoencoder_only(tiny_dataset):
    pipe = tiny_pipeline(0)
    model = VAETrainee(pipe)
    loss = model(_batch(tiny_dataset, 1), noise_seed=0)
    loss.backward()
    assert all(p.grad is not None for p in pipe.vae.parameters() if p.requires_grad)
    assert all(p.grad is None for name in TRAINABLE for p in getattr(pipe, name).parameters())


def _opts(data, out, steps, **kw):
    kw.setdefault("batch", 2)
    return loop.TrainOptions(data=str(data), out=str(out), steps=steps, checkpoint_every=2, **kw)


def _losses(out):
    with open(os.path.join(out, "loss.jsonl")) as fh:
        return [json.loads(line) for line in fh]


def test_resume_continues_the_same_loss_curve(tiny_dataset, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    loop.train(_opts(tiny_dataset, whole, 4))
    loop.train(_opts(tiny_dataset, parts, 2))
    s = loop.train(_opts(tiny_dataset, parts, 4, resume=True))
    assert s["start"] == 2 and s["steps"] == 4
    a, b = _losses(whole), _losses(parts)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert os.path.isfile(parts / "loss.png")
    # Only the last checkpoints are kept; `last` points at the newest.
    assert sorted(os.listdir(parts / "checkpoints")) == ["step_0000002", "step_0000004"]
    assert os.path.realpath(parts / "last") == str(parts / "checkpoints" / "step_0000004")


def test_checkpoint_is_served_by_aa2_as_it_is(tiny_dataset, tmp_path):
    from backend.training.data import layout
    from blender_addon.core.client import Client, run_job
    from models.aa2.pipeline import load_pipeline
    from tests.serverproc import start_server

    out = tmp_path / "run"
    loop.train(_opts(tiny_dataset, out, 2))
    ckpt = out / "last"
    # The pipeline folder holds the EMA weights, not the raw ones.
    pipe = load_pipeline(str(ckpt))
    from safetensors.torch import load_file
    ema = load_file(str(ckpt / "training_state" / "ema.safetensors"))
    name = next(n for n in ema if n.startswith("pose_guider."))
    assert torch.equal(dict(pipe.pose_guider.named_parameters())[name.split(".", 1)[1]], ema[name])
    clip = layout.load_clip(str(tiny_dataset), layout.split_indices(str(tiny_dataset),
                                                                    layout.read_manifest(str(tiny_dataset)), "test")[0])
    from backend.training.evaluation.run import clip_frames, read_reference
    n = clip["gt"].shape[0]
    spec = protocol.JobSpec(engine="aa2", width=32, height=32, frames=n, objects=clip["meta"]["objects"],
                            params={"steps": 1, "guidance": 1.0, "context_frames": n, "overlap": 0, "seed": 0})
    with start_server(engines=("aa2",), weights=str(ckpt), env={"OMP_NUM_THREADS": "1"}, startup_timeout=60) as srv:
        with Client(srv.address) as cl:
            events = run_job(cl, spec, read_reference(clip["reference_path"]),
                             ((i, clip_frames(clip, i)) for i in range(n)), timeout=90)
        assert events[-1].type == protocol.DONE, srv.log()
    assert sorted(e.header["index"] for e in events if e.type == protocol.RESULT) == list(range(n))


def test_two_process_accelerate_launch_writes_the_same_layout(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "backend.cli", "train",
           "--data", str(tiny_dataset), "--out", str(out), "--steps", "1", "--batch", "1"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "last" / "training_state" / "state.json").read_text())
    assert state["world"] == 2 and state["step"] == 1
    single = tmp_path / "single"
    loop.train(_opts(tiny_dataset, single, 1, batch=None))

    def layout_of(root):
        return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root / "last") for f in fs)
    assert layout_of(out) == layout_of(single)
    assert len(_losses(out)) == 1


def test_bad_input_gets_one_sentence(tiny_dataset, tmp_path):
    def problem(**kw):
        with pytest.raises(loop.TrainError) as e:
            loop.check_options(loop.TrainOptions(**{"data": str(tiny_dataset), "out": str(tmp_path / "o"),
                                                    "steps": 1, **kw}))
        return str(e.value)
    (tmp_path / "empty").mkdir()
    assert "is empty" in problem(data=str(tmp_path / "empty"))
    assert "does not exist" in problem(data=str(tmp_path / "nowhere"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"format": "webdataset"}')
    assert "not an Inhabit dataset" in problem(data=str(foreign))
    other = tmp_path / "sd"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    assert "StableDiffusionPipeline" in problem(init=str(other))
    assert "--init DIR" in problem(config="sd15")
    assert "has no checkpoint yet" in problem(resume=True)
    run = tmp_path / "run"
    loop.train(_opts(tiny_dataset, run, 1))
    msg = problem(out=str(run), resume=True, stage=2)
    assert "--stage 1" in msg
    with open(run / "last" / "training_state" / "state.json") as fh:
        state = json.load(fh)
    state["config"] = "sd15"
    with open(run / "last" / "training_state" / "state.json", "w") as fh:
        json.dump(state, fh)
    assert "--config sd15" in problem(out=str(run), resume=True)
    assert "add --resume" in problem(out=str(run))
    # A tiny folder given to another config names the widths.
    assert "UNet widths" in problem(init=str(run / "last"), config="sd15")
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "train", "--data", str(tmp_path / "empty"), "--out",
                           str(tmp_path / "o"), "--steps", "1"], cwd=REPO_ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--data" in proc.stderr


def test_a_failed_checkpoint_write_leaves_the_previous_one(tiny_dataset, tmp_path, monkeypatch):
    import errno

    from backend.training import checkpoint
    out = tmp_path / "run"
    loop.train(_opts(tiny_dataset, out, 2))

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError):
        loop.train(_opts(tiny_dataset, out, 4, resume=True))
    monkeypatch.undo()
    assert os.path.realpath(out / "last") == str(out / "checkpoints" / "step_0000002")
    assert not [n for n in os.listdir(out / "checkpoints") if n.startswith(".tmp")]
    s = loop.train(_opts(tiny_dataset, out, 4, resume=True))   # and it resumes from there
    assert s["start"] == 2 and s["steps"] == 4


def test_small_config_takes_an_optimizer_step_at_32px(tiny_dataset):
    """`--config small`: wider, deeper UNets from the same builders as tiny; one step on 32 px clips."""
    cfg = loop.CONFIGS["small"]
    assert cfg["widths"] == (64, 128, 256) and cfg["layers"] == 2 and not cfg["needs_init"]
    loop.check_options(loop.TrainOptions(data=str(tiny_dataset), out="unused", config="small", steps=1))
    pipe = loop.new_pipeline("small", 0)
    for unet in (pipe.denoising_unet, pipe.reference_unet):
        assert tuple(unet.config.block_out_channels) == cfg["widths"] and unet.config.layers_per_block == 2
    model = AA2Trainee(pipe, 1)
    params = [p for _, p in model.trainable_parameters()]
    before = params[0].detach().clone()
    opt = torch.optim.AdamW(params, lr=cfg["lr"])
    batch = _batch(tiny_dataset, 1, n=1)
    assert batch[0]["gt"].shape[1:3] == (32, 32)
    loss = model(batch, noise_seed=1)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    model.release_hooks()
    for name in TRAINABLE:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, name).parameters()), name
    opt.step()
    assert not torch.equal(before, params[0].detach())
