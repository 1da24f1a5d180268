"""Read local weight files into flat state dicts, and say in one sentence what is wrong with them."""
from __future__ import annotations

import os

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class MetricWeightsError(ValueError):
    """A metric's weight file is missing, unreadable or has the wrong keys (the message is one sentence)."""


def read_state_dict(path: str) -> dict:
    """One file -> {key: tensor}. Pickled files go through ``torch.load(weights_only=True)`` only."""
    import torch
    if not os.path.isfile(path):
        raise MetricWeightsError(f"{path!r} is not a file: pass a local .safetensors or .pth weight file.")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(path)
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # corrupt file, foreign pickle: one sentence, the cause appended
        raise MetricWeightsError(f"{path!r} cannot be read as a state dict ({type(exc).__name__}): pass a "
                                 ".safetensors file or a .pth holding only tensors.") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise MetricWeightsError(f"{path!r} does not hold a flat dict of tensors: pass a state dict file.")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def read_state_dicts(path: str) -> dict:
    """A file, or a folder whose weight files are merged (a key found twice is an error)."""
    if not os.path.isdir(path):
        return read_state_dict(path)
    files = sorted(f for f in os.listdir(path) if f.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise MetricWeightsError(f"folder {path!r} holds no .safetensors/.pth file: put the weight files in it.")
    merged: dict = {}
    for f in files:
        sd = read_state_dict(os.path.join(path, f))
        twice = sorted(set(sd) & set(merged))
        if twice:
            raise MetricWeightsError(f"{os.path.join(path, f)!r} repeats keys of another file in the folder "
                                     f"({_few(twice)}): keep one file per part.")
        merged.update(sd)
    return merged


def _few(keys: list, n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_into(module, sd: dict, *, what: str, path: str, ignore=lambda k: False) -> None:
    """Copy ``sd`` into ``module`` strictly: missing or mis-shaped keys are one sentence naming them.

    Keys the module does not have are ignored when ``ignore(key)`` says so (e.g. AlexNet's classifier)
    and are an error otherwise, so a file of another model is not silently half-loaded.
    """
    own = module.state_dict()
    needed = [k for k in own if not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in sd]
    shapes = [f"{k} {tuple(sd[k].shape)} (expected {tuple(own[k].shape)})" for k in needed
              if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    extra = [k for k in sd if k not in own and not ignore(k)]
    problems = []
    if missing:
        problems.append(f"lacks {len(missing)} keys ({_few(missing)})")
    if shapes:
        problems.append(f"has mis-shaped keys ({_few(shapes, 2)})")
    if extra:
        problems.append(f"has keys {what} does not use ({_few(extra)})")
    if problems:
        raise MetricWeightsError(f"{path!r} is not {what} weights: it {'; it '.join(problems)}; "
                                 "see docs/evaluation.md for the expected key names.")
    module.load_state_dict({k: sd[k] for k in needed}, strict=False)
