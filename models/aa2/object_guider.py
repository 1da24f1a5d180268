"""Object guider and spatial blending (Animate Anyone 2).

The guider is a light fully-convolutional net on the VAE latents of the
interacting objects: 3x3 convs, one stride-2 step per UNet resolution level,
giving one feature map per level with that level's channel count. The
decoder (mid and up blocks) blends them in after each spatial-attention layer:

    alpha = sigmoid(Conv2D(cat(z_noise, z_obj)));  z = alpha * z_obj + (1 - alpha) * z_noise

Init of the blend conv: weights zero and bias ``blend_bias_init`` (-6). A fully
zero conv would give alpha = 0.5 and replace half of every decoder feature by
untrained object features, wrecking a pretrained UNet. With bias -6, alpha =
sigmoid(-6) ~ 0.0025: the layer starts near identity, yet the gradient through
the sigmoid (~0.0025) is non-zero, so training can open the gate where objects
matter.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class ObjectGuider(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, latent_channels: int = 4, block_out_channels: tuple = (320, 640, 1280, 1280),
                 blend_levels: tuple = (3, 3, 2, 1, 0), blend_bias_init: float = -6.0):
        """``blend_levels``: for each blend point, in the order the decoder
        meets them (mid block first, then up blocks), the UNet level index
        (0 = full latent resolution) whose features it blends."""
        super().__init__()
        ch = block_out_channels
        self.conv_in = nn.Conv2d(latent_channels, ch[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for i in range(len(ch)):
            c_in = ch[0] if i == 0 else ch[i - 1]
            self.levels.append(nn.Sequential(
                nn.Conv2d(c_in, ch[i], 3, padding=1, stride=1 if i == 0 else 2), nn.SiLU(),
                nn.Conv2d(ch[i], ch[i], 3, padding=1)))
        self.blend = nn.ModuleList()
        for level in blend_levels:
            conv = nn.Conv2d(2 * ch[level], 1, 3, padding=1)
            nn.init.zeros_(conv.weight)
            assert conv.bias is not None
            nn.init.constant_(conv.bias, blend_bias_init)
            self.blend.append(conv)

    def forward(self, object_latents: torch.Tensor) -> list[torch.Tensor]:
        """[N, 4, h, w] -> one feature map per UNet level."""
        x = F.silu(self.conv_in(object_latents))
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats

    def blend_features(self, index: int, z_noise: torch.Tensor, z_obj: torch.Tensor) -> torch.Tensor:
        if z_obj.shape[-2:] != z_noise.shape[-2:]:
            z_obj = F.interpolate(z_obj, size=z_noise.shape[-2:], mode="nearest")
        alpha = torch.sigmoid(self.blend[index](torch.cat([z_noise, z_obj.to(z_noise.dtype)], dim=1)))
        return alpha * z_obj + (1.0 - alpha) * z_noise


def decoder_blend_levels(unet_config) -> tuple[list[str], tuple]:
    """Names of the decoder's spatial-attention (Transformer2D) modules in
    forward order, and the UNet level of each (for ``ObjectGuider``)."""
    n_levels = len(unet_config["block_out_channels"])
    layers = unet_config["layers_per_block"]
    layers = layers if isinstance(layers, int) else layers[-1]
    names, levels = [], []
    names.append("mid_block.attentions.0")
    levels.append(n_levels - 1)
    for j, kind in enumerate(unet_config["up_block_types"]):
        if "CrossAttn" in kind:
            for a in range(layers + 1):
                names.append(f"up_blocks.{j}.attentions.{a}")
                levels.append(n_levels - 1 - j)
    return names, tuple(levels)
