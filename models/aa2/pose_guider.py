"""Pose guider: skeleton map -> features added to the denoising UNet after conv_in.

Layout of Moore-AnimateAnyone's ``PoseGuider`` (so its ``pose_guider.pth`` loads
by name): conv_in 3x3 to 16 channels, then per step a 3x3 conv and a stride-2
3x3 conv (16->32->96->256, three stride-2 convs = /8, the VAE factor), then a
zero-initialised 3x3 conv to the UNet's first block width (320 at full size).
The zero init makes an untrained guider add nothing, so the UNet starts as the
plain image model and learns how much pose to take.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class PoseGuider(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, conditioning_embedding_channels: int = 320, conditioning_channels: int = 3,
                 block_out_channels: tuple = (16, 32, 96, 256)):
        super().__init__()
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(block_out_channels[:-1], block_out_channels[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(block_out_channels[-1], conditioning_embedding_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, conditioning: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] in [0, 1] -> [N, embedding, H/8, W/8]."""
        x = F.silu(self.conv_in(conditioning))
        for block in self.blocks:
            x = F.silu(block(x))
        return self.conv_out(x)
