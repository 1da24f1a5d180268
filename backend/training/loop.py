"""The training loop behind ``inhabit train`` (accelerate: one CPU, one GPU, or
``accelerate launch`` over many processes and nodes with the same code).

Determinism is by construction, so ``--resume`` continues the same loss
curve: the data of step s is sample indices fixed by (seed, s) (stream.py),
the noise and timesteps of step s come from a generator seeded by
(seed, s, rank), and a checkpoint holds weights, EMA and optimizer state.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass

from . import checkpoint as ckpt

CONFIGS = {
    # name: block widths and layers per block of both UNets, learning rate, batch per process, needs --init
    "tiny": {"widths": (32, 64), "layers": 1, "lr": 5e-4, "batch": 4, "needs_init": False},
    # between the two: three levels, two layers each (28.6 M denoising-UNet parameters, tiny 1.2 M), still from scratch
    "small": {"widths": (64, 128, 256), "layers": 2, "lr": 2e-4, "batch": 2, "needs_init": False},
    "sd15": {"widths": (320, 640, 1280, 1280), "layers": 2, "lr": 1e-5, "batch": 1, "needs_init": True},
}


def new_pipeline(config: str, seed: int):
    """A random-initialised pipeline of a config trained from scratch (tiny, small)."""
    from models.aa2.tiny import tiny_pipeline
    cfg = CONFIGS[config]
    return tiny_pipeline(seed, channels=cfg["widths"], layers=cfg["layers"])


class TrainError(ValueError):
    """Bad input for training; the message is one sentence naming the field and the fix."""


@dataclass
class TrainOptions:
    data: str
    out: str
    config: str = "tiny"
    steps: int = 100
    stage: int = 1
    init: str | None = None
    resume: bool = False
    seed: int = 0
    batch: int | None = None
    lr: float | None = None
    window: int = 8           # frames per sample in stage 2
    checkpoint_every: int = 100
    max_minutes: float | None = None
    mixed_precision: str = "auto"
    gradient_checkpointing: str = "auto"
    adam8bit: bool = False
    num_workers: int = 0


def _noise_seed(seed: int, step: int, rank: int) -> int:
    return ((seed * 1_000_003 + step) * 4096 + rank) % (2**63 - 1)


def check_pipeline_folder(path: str, config: str) -> None:
    """--init must be an AA2 pipeline folder whose UNet has the config's widths."""
    index = os.path.join(path, "model_index.json")
    if not os.path.isdir(path) or not os.path.isfile(index):
        raise TrainError(f"--init {path!r} is not a pipeline folder (no model_index.json): pass a folder written "
                         "by `inhabit train`, `inhabit weights` or `inhabit doctor --save-tiny`.")
    with open(index) as fh:
        cls = json.load(fh).get("_class_name")
    if cls != "AnimateAnyone2Pipeline":
        raise TrainError(f"--init {path!r} holds a {cls} model, not an Animate Anyone 2 pipeline: convert it "
                         "with `inhabit weights` first.")
    unet_cfg = os.path.join(path, "denoising_unet", "config.json")
    with open(unet_cfg) as fh:
        widths = tuple(json.load(fh).get("block_out_channels", ()))
    if widths != CONFIGS[config]["widths"]:
        raise TrainError(f"--init {path!r} has UNet widths {list(widths)} but --config {config} needs "
                         f"{list(CONFIGS[config]['widths'])}: pick the --config that matches the folder.")


def check_options(o: TrainOptions) -> dict | None:
    """Problems found before torch loads; returns the resume state (or None)."""
    if o.config not in CONFIGS:
        raise TrainError(f"--config must be one of {', '.join(CONFIGS)}, got {o.config!r}.")
    if o.steps < 1:
        raise TrainError(f"--steps must be at least 1, got {o.steps}.")
    if o.stage not in (0, 1, 2):
        raise TrainError(f"--stage must be 0 (autoencoder, for configs from scratch), 1 or 2, got {o.stage}.")
    if o.adam8bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise TrainError("--adam8bit needs the bitsandbytes package: install it, or leave --adam8bit off.") \
                from None
    from backend.training.data import layout
    try:
        layout.split_indices(o.data, layout.read_manifest(o.data), "train")
    except layout.DatasetError as exc:
        raise TrainError(str(exc)) from None
    if o.resume:
        last = os.path.join(o.out, "last")
        if not os.path.exists(last):
            raise TrainError(f"--resume: {o.out!r} has no checkpoint yet: drop --resume to start training there.")
        try:
            state = ckpt.read_state(last)
        except ckpt.CheckpointError as exc:
            raise TrainError(str(exc)) from None
        for key, value in (("config", o.config), ("stage", o.stage)):
            if state.get(key) != value:
                raise TrainError(f"--resume: the checkpoint in {o.out!r} was trained with --{key} {state.get(key)}, "
                                 f"not {value}: resume with --{key} {state.get(key)}, or use a new --out.")
        return state
    if o.init:
        check_pipeline_folder(o.init, o.config)
    elif CONFIGS[o.config]["needs_init"]:
        raise TrainError(f"--config {o.config} starts from pretrained weights: pass --init DIR (a converted "
                         "Moore-AnimateAnyone folder, see `inhabit weights`).")
    if os.path.exists(os.path.join(o.out, "last")):
        raise TrainError(f"--out {o.out!r} already holds a training run: add --resume to continue it, "
                         "or pass a new folder.")
    return None


def train(o: TrainOptions, *, progress=None, should_stop=None) -> dict:
    import torch

    with torch.enable_grad():   # a caller may have switched autograd off globally
        return _train(o, check_options(o), progress, should_stop)


def _train(o: TrainOptions, state, progress, should_stop) -> dict:
    import numpy as np
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    from models.aa2.pipeline import load_pipeline

    from .model import TRAINABLE, AA2Trainee, VAETrainee
    from .plot import write_loss_curve
    from .stream import ClipStream, collate

    cfg = CONFIGS[o.config]
    cuda = torch.cuda.is_available()
    mp = ("bf16" if cuda else "no") if o.mixed_precision == "auto" else o.mixed_precision
    acc = Accelerator(mixed_precision=mp, cpu=not cuda,
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    rank, world = acc.process_index, acc.num_processes
    batch_size = o.batch or cfg["batch"]
    lr = o.lr or cfg["lr"]
    start = 0
    last = os.path.join(o.out, "last")
    if state is not None:
        pipe = load_pipeline(last, device="cpu", dtype="float32")
        start = int(state["step"])
    elif o.init:
        pipe = load_pipeline(o.init, device="cpu", dtype="float32")
    else:
        pipe = new_pipeline(o.config, o.seed)
    pipe.to(acc.device)
    trainee = VAETrainee(pipe) if o.stage == 0 else AA2Trainee(pipe, o.stage)
    for name in ("vae",) if o.stage == 0 else TRAINABLE:
        getattr(trainee, name).train()
    if o.stage > 0 and (o.gradient_checkpointing == "on" or (o.gradient_checkpointing == "auto" and cuda)):
        for m in (trainee.reference_unet, trainee.denoising_unet):
            m.enable_gradient_checkpointing()
    named = trainee.trainable_parameters()
    params = [p for _, p in named]
    if o.adam8bit:
        import bitsandbytes as bnb
        opt = bnb.optim.AdamW8bit(params, lr=lr, weight_decay=1e-2)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    ema = ckpt.EMA(named)
    if state is not None:
        try:
            ckpt.load_training_state(last, named, ema, opt)
        except ckpt.CheckpointError as exc:
            raise TrainError(str(exc)) from None
    model, opt = acc.prepare(trainee, opt)
    window = o.window if o.stage == 2 else 1
    stream = ClipStream(o.data, "train", seed=o.seed, window=window, start=start * batch_size * world,
                        rank=rank, world=world)
    loader = torch.utils.data.DataLoader(stream, batch_size=batch_size, collate_fn=collate,
                                         num_workers=o.num_workers)
    batches = iter(loader)

    log_path = os.path.join(o.out, "loss.jsonl")
    history = []
    if acc.is_main_process:
        os.makedirs(o.out, exist_ok=True)
        if os.path.exists(log_path):
            with open(log_path) as fh:
                history = [r for r in map(json.loads, filter(str.strip, fh)) if r["step"] <= start]
        with open(log_path + ".tmp", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in history)
        os.replace(log_path + ".tmp", log_path)

    run_state = {"config": o.config, "stage": o.stage, "seed": o.seed, "batch": batch_size, "world": world,
                 "lr": lr, "window": window, "data": os.path.abspath(o.data)}
    saved_at = start
    folder = last if state is not None else None

    def save(step):
        nonlocal saved_at, folder
        acc.wait_for_everyone()
        if o.stage == 0:
            trainee.calibrate()
        if acc.is_main_process:
            folder = ckpt.save(o.out, pipe=pipe, named_params=named, ema=ema, optimizer=opt,
                               state={**run_state, "step": step})
            write_loss_curve(history, os.path.join(o.out, "loss.png"))
        acc.wait_for_everyone()
        saved_at = step

    t0 = time.monotonic()
    step = start
    stopped = None
    with open(log_path, "a") if acc.is_main_process else open(os.devnull, "w") as log:
        while step < o.steps:
            batch = next(batches)
            with acc.autocast():
                loss = model(batch, _noise_seed(o.seed, step, rank))
            acc.backward(loss)
            acc.unwrap_model(model).release_hooks()
            acc.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            ema.update(named, step)
            step += 1
            value = float(acc.gather(loss.detach().float().reshape(1)).mean())
            if not math.isfinite(value):
                raise RuntimeError(f"the loss became {value} at step {step}: lower --lr")
            elapsed = time.monotonic() - t0
            rec = {"step": step, "loss": round(value, 6), "elapsed_s": round(elapsed, 2)}
            history.append(rec)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if progress is not None and acc.is_main_process:
                rate = (step - start) / max(elapsed, 1e-9)
                eta = (o.steps - step) / rate if rate else None
                if o.max_minutes is not None and eta is not None:
                    eta = min(eta, max(0.0, o.max_minutes * 60 - elapsed))   # the time budget ends it first
                progress(step, o.steps, value, rate, eta)
            budget_over = o.max_minutes is not None and elapsed > o.max_minutes * 60
            asked = should_stop is not None and should_stop()
            if step % o.checkpoint_every == 0 or step == o.steps or budget_over or asked:
                save(step)
            if budget_over or asked:
                stopped = "time budget" if budget_over else "stopped"
                break
    if saved_at != step:
        save(step)
    acc.end_training()
    recent = [r["loss"] for r in history[-20:]]
    return {"steps": step, "start": start, "seconds": round(time.monotonic() - t0, 1), "checkpoint": folder,
            "loss_last20": round(float(np.mean(recent)), 5) if recent else None, "stopped": stopped,
            "world": world, "mixed_precision": mp, "main": acc.is_main_process}
