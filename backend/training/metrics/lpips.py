"""LPIPS, the "alex" variant (Zhang et al. 2018, v0.1), in plain torch.

The network is torchvision's AlexNet feature trunk cut after each ReLU
(relu1..relu5, 64/192/384/256/256 channels) and LPIPS' learned 1x1 heads that
weigh each layer's squared, channel-normalised feature difference. Key names
are the public ones, so the two public files load as they are:

- backbone: torchvision's ``alexnet-owt-7be5be79.pth`` -- ``features.{0,3,6,8,10}.{weight,bias}``
  (its ``classifier.*`` keys are ignored);
- heads: lpips' ``weights/v0.1/alex.pth`` -- ``lin{0..4}.model.1.weight``, shapes (1, C, 1, 1).

Either one file holding both (``inhabit weights lpips-pack`` writes it) or a
folder holding the two files.
"""
from __future__ import annotations

import torch
from torch import nn

from .state_dicts import load_into, read_state_dicts

CHANNELS = (64, 192, 384, 256, 256)
# LPIPS' ScalingLayer: inputs in [-1, 1] are shifted and scaled to ImageNet statistics.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
MIN_SIDE = 64   # below this AlexNet's pooling runs out of pixels; smaller frames are upsampled


RELU_INDICES = (1, 4, 7, 9, 11)   # relu1..relu5 in torchvision's alexnet().features


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` with the same indices (so the same key names)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True))   # the last max-pool is not used


class LinearHead(nn.Module):
    """lpips' NetLinLayer: dropout (off at eval) then a bias-free 1x1 conv to one channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.features = alexnet_features()   # module names = the public key names
        for i, c in enumerate(CHANNELS):
            self.add_module(f"lin{i}", LinearHead(c))

    def load_flat(self, sd: dict, path: str = "LPIPS weights") -> None:
        # lpips built with use_dropout=False names the conv model.0; the released files say model.1
        sd = {(k.replace(".model.0.", ".model.1.") if k.startswith("lin") else k): v for k, v in sd.items()}
        load_into(self, sd, what="LPIPS-alex (torchvision alexnet features.* + lpips lin*)", path=path,
                  ignore=lambda k: k.startswith("classifier."))

    def relus(self, x) -> list:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in RELU_INDICES:
                outs.append(x)
        return outs

    def forward(self, a, b):
        """LPIPS distance per image; ``a``/``b``: (N, 3, H, W) RGB in [-1, 1]."""
        if min(a.shape[-2:]) < MIN_SIDE:
            f = MIN_SIDE / min(a.shape[-2:])
            size = (round(a.shape[-2] * f), round(a.shape[-1] * f))
            a, b = (nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (a, b))
        fa, fb = self.relus((a - self.shift) / self.scale), self.relus((b - self.shift) / self.scale)
        total = 0
        for i, (x, y) in enumerate(zip(fa, fb)):
            d = (_unit(x) - _unit(y)) ** 2
            total = total + getattr(self, f"lin{i}")(d).mean(dim=(2, 3))
        return total.view(-1)


def _unit(x, eps: float = 1e-10):
    """lpips' normalize_tensor: each pixel's feature vector to unit length."""
    return x / (torch.sqrt((x ** 2).sum(dim=1, keepdim=True)) + eps)


def load_lpips(path: str, device="cpu") -> LPIPS:
    model = LPIPS()
    model.load_flat(read_state_dicts(path), path)
    return model.eval().requires_grad_(False).to(device)


def to_unit_range(frames_uint8) -> torch.Tensor:
    """(N, H, W, 3) uint8 numpy -> (N, 3, H, W) float in [-1, 1]."""
    t = torch.from_numpy(frames_uint8).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


def pack(alexnet_path: str, lpips_path: str, out: str) -> dict:
    """Merge torchvision's alexnet .pth and lpips' alex.pth into one safetensors file (checked first)."""
    from safetensors.torch import save_file

    from .state_dicts import read_state_dict
    backbone = {k: v for k, v in read_state_dict(alexnet_path).items() if k.startswith("features.")}
    heads = read_state_dict(lpips_path)
    merged = {**backbone, **heads}
    LPIPS().load_flat(merged, f"{alexnet_path} + {lpips_path}")   # the same check the loader does
    save_file({k: v.contiguous() for k, v in merged.items()}, out)
    return merged
