"""FVD (Unterthiner et al. 2018): the Fréchet distance between I3D features of
real and generated clips.

Clip preparation follows the reference code (``frechet_video_distance.py``:
bilinear resize to 224 x 224, RGB scaled to [-1, 1], 16-frame clips), with one
addition it does not need: a clip shorter than ``frames`` is stretched to it by
repeating frames (nearest earlier frame on an even time grid), and a longer one
is cut into consecutive ``frames``-long windows (the remainder dropped, unless
the clip has no full window). The feature is I3D's pooled Mixed_5c (1024-d,
``features="pool"``) or the 400 Kinetics logits computed from it
(``features="logits"``), which is what the TF reference and StyleGAN-V's FVD
compare -- use it to set numbers beside published ones.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

CLIP_FRAMES = 16
SIZE = 224


def clip_windows(clip: np.ndarray, frames: int = CLIP_FRAMES) -> list[np.ndarray]:
    """(T, H, W, 3) -> list of (frames, H, W, 3) windows, as described in the module docstring."""
    t = clip.shape[0]
    if t < frames:
        return [clip[np.floor(np.arange(frames) * t / frames).astype(int)]]
    return [clip[i:i + frames] for i in range(0, t - frames + 1, frames)]


def prepare(window: np.ndarray, size: int = SIZE) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (1, 3, T, size, size) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(window)).permute(0, 3, 1, 2).float()   # T, 3, H, W
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x / 127.5 - 1.0).permute(1, 0, 2, 3)[None]


@torch.no_grad()
def clip_features(model, clips, *, frames: int = CLIP_FRAMES, size: int = SIZE, features: str = "pool") -> np.ndarray:
    """I3D features (N windows, 1024 for "pool" or 400 for "logits") of uint8 clips, float64."""
    device = next(model.parameters()).device
    embed = model.features if features == "pool" else model
    feats = [embed(prepare(w, size).to(device)).double().cpu().numpy()
             for clip in clips for w in clip_windows(np.asarray(clip), frames)]
    return np.concatenate(feats, 0)


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa Sb)^1/2), features as rows.

    tr((Sa Sb)^1/2) is taken as the sum of square roots of the eigenvalues of
    Sa^1/2 Sb Sa^1/2 (symmetric, positive semi-definite, same spectrum), which
    needs only symmetric eigen-decompositions -- no scipy, stable when the
    covariances are singular (fewer clips than feature dimensions).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    sa = np.cov(a, rowvar=False) if len(a) > 1 else np.zeros((a.shape[1],) * 2)
    sb = np.cov(b, rowvar=False) if len(b) > 1 else np.zeros((b.shape[1],) * 2)
    ra = _sqrtm_psd(sa)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ sb @ ra), 0, None)).sum()
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * cross)
