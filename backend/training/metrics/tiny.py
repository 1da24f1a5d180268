"""Randomly initialised LPIPS and I3D weight files in the public key layouts
(the one place tests build them; real scores need the real files)."""
from __future__ import annotations

import os


def _init(build, seed: int):
    """Build under ``seed`` (default init included), then He-normal convolutions (so features stay lively)."""
    import torch
    torch.manual_seed(seed)
    model = build()
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


def save_random_lpips(path: str, seed: int = 0, *, folder: bool = False) -> str:
    """One safetensors file (``features.*`` + ``lin*``), or a folder with the two public-style .pth files."""
    import torch
    from safetensors.torch import save_file

    from .lpips import LPIPS
    model = _init(LPIPS, seed)
    with torch.no_grad():   # LPIPS' heads are non-negative weights
        for i in range(5):
            getattr(model, f"lin{i}").model[1].weight.abs_()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if not folder:
        save_file(sd, path)
        return path
    os.makedirs(path, exist_ok=True)
    torch.save({k: v for k, v in sd.items() if k.startswith("features.")}, os.path.join(path, "alexnet.pth"))
    torch.save({k: v for k, v in sd.items() if k.startswith("lin")}, os.path.join(path, "alex.pth"))
    return path


def save_random_i3d(path: str, seed: int = 0) -> str:
    """A pytorch-i3d-layout state dict (``torch.save``, as ``rgb_imagenet.pt`` is)."""
    import torch

    from .i3d import InceptionI3d
    torch.save(_init(InceptionI3d, seed).state_dict(), path)
    return path
