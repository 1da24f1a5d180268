"""The denoising video UNet and the hooks that condition it.

The UNet itself is diffusers' ``UNetMotionModel`` (SD-1.5 2D UNet inflated
with AnimateDiff motion modules) with a 9-channel input
``[z_t(4) | z_env(4) | mask/8 (1)]``. ``expand_conv_in`` widens a 4-channel
``conv_in`` with zero weights for the new channels (SD-inpainting style) so
the widened UNet computes exactly what the 4-channel one did until trained.

Per-step conditioning enters through forward hooks, so diffusers is used
unmodified:
- pose (+ depth modulation) features are added to the output of ``conv_in``;
- object features are blended after each decoder spatial-attention layer.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

LATENT_CHANNELS = 4
INPUT_CHANNELS = 9   # [z_t | z_env | mask]


def expand_conv_in(unet, in_channels: int = INPUT_CHANNELS):
    """Widen ``unet.conv_in`` to ``in_channels`` inputs; new weights are zero."""
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise ValueError(f"conv_in already has {old.in_channels} inputs, cannot shrink to {in_channels}")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :old.in_channels] = old.weight
        assert new.bias is not None and old.bias is not None   # diffusers' conv_in has a bias
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


@contextmanager
def add_after_conv_in(unet, features: torch.Tensor | None):
    """Add ``features`` [N, C, h, w] to conv_in's output (N divides the batch)."""
    if features is None:
        yield
        return

    def hook(module, args, output):
        f = features.to(output.dtype)
        if f.shape[0] != output.shape[0]:
            f = f.repeat(output.shape[0] // f.shape[0], 1, 1, 1)
        return output + f

    handle = unet.conv_in.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def blend_objects(unet, object_guider, layer_names: list[str], features: list[torch.Tensor] | None):
    """After each named decoder attention layer, blend in object features."""
    if features is None or object_guider is None:
        yield
        return
    modules = dict(unet.named_modules())
    levels = object_guider.config.blend_levels
    if len(levels) != len(layer_names):
        raise ValueError(f"object guider has {len(levels)} blend layers, the UNet decoder "
                         f"{len(layer_names)} -- they were built for different UNets")
    handles = []
    for i, name in enumerate(layer_names):
        def hook(module, args, output, _i=i):
            hs = output[0] if isinstance(output, tuple) else output.sample
            obj = features[levels[_i]]
            if obj.shape[0] != hs.shape[0]:
                obj = obj.repeat(hs.shape[0] // obj.shape[0], 1, 1, 1)
            out = object_guider.blend_features(_i, hs, obj)
            if isinstance(output, tuple):
                return (out,) + tuple(output[1:])
            output.sample = out
            return output
        handles.append(modules[name].register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
