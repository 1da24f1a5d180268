"""Seams between Wan-Animate segments: measure them, and reduce them.

Each segment after the first regenerates its P carried frames as "known"
frames; how far its version of them is from the carried originals is a
direct estimate of the colour shift of the whole new segment. Matching the new
segment's per-channel mean and spread (inside the generation mask) to the
carried frames removes that shift at the seam.
"""
from __future__ import annotations

import numpy as np


def match_to_carried(video, carried, mask, *, max_gain: float = 2.0):
    """``video`` [1, 3, T, H, W] (its first P frames are the regenerated carried
    ones), ``carried`` [1, 3, P, H, W], ``mask`` [1, 1, P, H, W] in [0, 1]. Returns
    ``video`` with each channel's mean and std inside the mask set to those of
    the carried frames (an affine colour transfer, gain clamped)."""
    import torch
    p = carried.shape[2]
    sel = (mask > 0.5).expand(-1, 3, -1, -1, -1)
    if int(sel.sum()) < 3 * 16:
        return video
    gen = video[:, :, :p]
    out = video.clone()
    for c in range(3):
        g = gen[:, c][sel[:, c]].float()
        r = carried[:, c][sel[:, c]].float()
        gain = (r.std() / g.std().clamp_min(1e-4)).clamp(1 / max_gain, max_gain)
        out[:, c] = ((video[:, c].float() - g.mean()) * gain + r.mean()).to(video.dtype)
    return out.clamp(-1, 1) if isinstance(out, torch.Tensor) else out


def frame_differences(frames: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Mean absolute difference between consecutive frames, [T-1], optionally
    inside ``region`` (bool [T, H, W] or [H, W])."""
    f = np.asarray(frames, np.float32)
    d = np.abs(f[1:] - f[:-1]).mean(axis=-1)
    if region is not None:
        r = np.asarray(region, bool)
        r = r[1:] | r[:-1] if r.ndim == 3 else np.broadcast_to(r, d.shape)
        return np.array([di[ri].mean() if ri.any() else 0.0 for di, ri in zip(d, r)])
    return d.mean(axis=(1, 2))


def seam_ratio(frames: np.ndarray, boundaries: list[int], region=None) -> float:
    """Mean frame difference across segment boundaries / mean inside segments.
    ``boundaries`` are the first frame index of each new segment; 1.0 = no seam."""
    d = frame_differences(frames, region)
    at = [b - 1 for b in boundaries if 0 < b < len(frames)]
    inside = np.delete(d, at)
    if not at or inside.size == 0:
        return 1.0
    return float(d[at].mean() / max(float(inside.mean()), 1e-6))
