"""Checkpoints: a servable pipeline folder plus the training state, written atomically.

``OUT/checkpoints/step_0000100/`` is an ordinary AA2 pipeline folder
(safetensors, EMA weights: what ``inhabit serve --engine aa2 --weights``
loads as it is) with a ``training_state/`` subfolder: the raw trainable
weights and the EMA (safetensors), the optimizer state (``torch.save`` of
tensors and numbers, read back with ``weights_only=True``) and state.json.
The folder is written under a temporary name and renamed when complete, and
``OUT/last`` (a symlink) is switched with an atomic rename afterwards, so a
kill or a full disk at any moment leaves the previous checkpoint valid.
"""
from __future__ import annotations

import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

STATE_DIR = "training_state"
KEEP = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; one sentence naming the fix."""


class EMA:
    """Exponential moving average of the trainable weights with warm-up
    (decay min(max_decay, (1 + step) / (10 + step))), so short runs are not
    dominated by the initial weights."""

    def __init__(self, named_params, max_decay: float = 0.999):
        self.max_decay = max_decay
        self.shadow = {n: p.detach().clone().float() for n, p in named_params}

    @torch.no_grad()
    def update(self, named_params, step: int) -> None:
        d = min(self.max_decay, (1 + step) / (10 + step))
        for n, p in named_params:
            self.shadow[n].mul_(d).add_(p.detach().float(), alpha=1 - d)

    @torch.no_grad()
    def swap_into(self, named_params) -> dict:
        """Copy the EMA into the parameters; return the raw values to put back."""
        saved = {}
        for n, p in named_params:
            saved[n] = p.detach().clone()
            p.copy_(self.shadow[n].to(p.dtype))
        return saved


def _link_last(out: str, target: str) -> None:
    tmp = os.path.join(out, ".last.tmp")
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.relpath(target, out), tmp)
    os.replace(tmp, os.path.join(out, "last"))


def save(out: str, *, pipe, named_params, ema: EMA, optimizer, state: dict) -> str:
    """Write checkpoint ``state['step']``; returns its folder."""
    root = os.path.join(out, "checkpoints")
    os.makedirs(root, exist_ok=True)
    name = f"step_{state['step']:07d}"
    final, tmp = os.path.join(root, name), os.path.join(root, ".tmp-" + name)
    shutil.rmtree(tmp, ignore_errors=True)
    params = list(named_params)
    raw = {n: p.detach().contiguous().cpu() for n, p in params}
    try:
        saved = ema.swap_into(params)
        try:
            pipe.save_pretrained(tmp, safe_serialization=True)
        finally:
            with torch.no_grad():
                for n, p in params:
                    p.copy_(saved[n])
        sdir = os.path.join(tmp, STATE_DIR)
        os.makedirs(sdir)
        save_file(raw, os.path.join(sdir, "trainable.safetensors"))
        save_file({n: t.contiguous() for n, t in ema.shadow.items()}, os.path.join(sdir, "ema.safetensors"))
        torch.save(optimizer.state_dict(), os.path.join(sdir, "optimizer.pt"))
        with open(os.path.join(sdir, "state.json"), "w") as fh:
            json.dump(state, fh, indent=1, sort_keys=True)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _link_last(out, final)
    for old in sorted(n for n in os.listdir(root) if n.startswith("step_"))[:-KEEP]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return final


def read_state(folder: str) -> dict:
    path = os.path.join(folder, STATE_DIR, "state.json")
    if not os.path.isfile(path):
        raise CheckpointError(f"{folder!r} holds no training state: --resume needs an --out folder "
                              "written by `inhabit train`.")
    with open(path) as fh:
        return json.load(fh)


def load_training_state(folder: str, named_params, ema: EMA, optimizer) -> None:
    sdir = os.path.join(folder, STATE_DIR)
    raw = load_file(os.path.join(sdir, "trainable.safetensors"))
    params = dict(named_params)
    if set(raw) != set(params):
        raise CheckpointError(f"{folder!r} trained other parameters than this run would: resume with the "
                              "same --config and --stage, or start a new --out.")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(raw[n])
    ema.shadow = {n: t.clone() for n, t in load_file(os.path.join(sdir, "ema.safetensors")).items()}
    optimizer.load_state_dict(torch.load(os.path.join(sdir, "optimizer.pt"), weights_only=True, map_location="cpu"))
