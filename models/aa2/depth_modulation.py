"""Depth-wise pose modulation (Animate Anyone 2).

Structured depth (character depth kept where the skeleton is drawn) goes
through its own pose-guider-style encoder; the skeleton features then attend
to the depth features (per-pixel tokens of one frame: query = skeleton, key
and value = depth), and a Conv3D mixes the result across neighbouring frames.

Init: both the attention's output projection and the Conv3D are zero-
initialised and added residually, so at init the module returns the pose
features unchanged -- loading a pose-only checkpoint (Moore's) gives exactly
that checkpoint's behaviour until the module is trained.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .pose_guider import PoseGuider


class DepthModulation(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, channels: int = 320, block_out_channels: tuple = (16, 32, 96, 256),
                 num_heads: int = 8, temporal_kernel: int = 3):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.depth_encoder = PoseGuider(channels, 1, block_out_channels)
        # The encoder's own out conv is zero-init (PoseGuider); start it small
        # random instead so the depth branch carries signal from step one --
        # the zero-init attention output below already keeps the module neutral.
        nn.init.normal_(self.depth_encoder.conv_out.weight, std=1e-3)
        self.norm_query = nn.GroupNorm(min(32, channels), channels)
        self.norm_context = nn.GroupNorm(min(32, channels), channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        pad = temporal_kernel // 2
        self.temporal = nn.Conv3d(channels, channels, (temporal_kernel, 1, 1), padding=(pad, 0, 0))
        nn.init.zeros_(self.temporal.weight)
        assert self.temporal.bias is not None
        nn.init.zeros_(self.temporal.bias)

    def forward(self, pose_features: torch.Tensor, structured_depth: torch.Tensor,
                num_frames: int) -> torch.Tensor:
        """pose_features [B*F, C, h, w], structured_depth [B*F, 1, H, W] -> [B*F, C, h, w]."""
        n, c, h, w = pose_features.shape
        depth = self.depth_encoder(structured_depth)
        heads = self.config.num_heads

        def tokens(x, norm, proj):
            t = proj(norm(x).flatten(2).transpose(1, 2))          # [N, hw, C]
            return t.view(n, h * w, heads, c // heads).transpose(1, 2)

        q = tokens(pose_features, self.norm_query, self.to_q)
        k = tokens(depth, self.norm_context, self.to_k)
        v = tokens(depth, self.norm_context, self.to_v)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, h * w, c)
        x = pose_features + self.to_out(attn).transpose(1, 2).reshape(n, c, h, w)
        # Temporal mixing across frames of each sample.
        b = n // num_frames
        x5 = x.view(b, num_frames, c, h, w).permute(0, 2, 1, 3, 4)
        x5 = x5 + self.temporal(x5)
        return x5.permute(0, 2, 1, 3, 4).reshape(n, c, h, w)
