"""LPIPS and FVD for ``inhabit eval``, only when their local weight files are given.

torch and the networks (backend/training/metrics/) load here, when the command runs with
``--lpips-weights`` / ``--i3d``; nothing is downloaded. LPIPS is averaged over
frames; FVD compares the I3D features of an engine's clips with those of the
ground-truth clips (computed once per clip and shared by every engine).
"""
from __future__ import annotations

import numpy as np


class LearnedScores:
    def __init__(self, lpips_weights: str | None = None, i3d_weights: str | None = None, *,
                 i3d_size: int = 224, i3d_frames: int = 16, fvd_features: str = "logits", device: str | None = None):
        import torch

        from backend.training.metrics.i3d import load_i3d
        from backend.training.metrics.lpips import load_lpips
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.lpips = _load("--lpips-weights", load_lpips, lpips_weights, self.device)
        self.i3d = _load("--i3d", load_i3d, i3d_weights, self.device)
        self.i3d_size, self.i3d_frames, self.fvd_features = i3d_size, i3d_frames, fvd_features
        self.lpips_values: dict[str, list[float]] = {}
        self.features: dict[str, list[np.ndarray]] = {}
        self.truth_features: dict[int, np.ndarray] = {}

    def add_clip(self, label: str, clip_index: int, results: list[np.ndarray], truth: np.ndarray) -> None:
        import torch

        from backend.training.metrics.fvd import clip_features
        from backend.training.metrics.lpips import to_unit_range
        res = np.stack(results)
        if self.lpips is not None:
            with torch.no_grad():
                d = self.lpips(to_unit_range(res).to(self.device), to_unit_range(np.asarray(truth)).to(self.device))
            self.lpips_values.setdefault(label, []).extend(d.tolist())
        if self.i3d is not None:
            kw = dict(frames=self.i3d_frames, size=self.i3d_size, features=self.fvd_features)
            if clip_index not in self.truth_features:
                self.truth_features[clip_index] = clip_features(self.i3d, [truth], **kw)
            self.features.setdefault(label, []).append(clip_features(self.i3d, [res], **kw))

    def summary(self, label: str) -> dict:
        from backend.training.metrics.fvd import frechet_distance
        out: dict = {}
        if self.lpips is not None:
            out["lpips"] = round(float(np.mean(self.lpips_values[label])), 4)
        if self.i3d is not None:
            real = np.concatenate(list(self.truth_features.values()))
            out["fvd"] = round(max(frechet_distance(real, np.concatenate(self.features[label])), 0.0), 2)
            out["fvd_windows"], out["fvd_features"] = int(len(real)), self.fvd_features
        return out


def _load(flag: str, loader, path: str | None, device: str):
    """The network from ``path`` (None without one); a bad file's sentence starts with the option's name."""
    from backend.training.metrics.state_dicts import MetricWeightsError
    if not path:
        return None
    try:
        return loader(path, device)
    except MetricWeightsError as exc:
        raise MetricWeightsError(f"{flag}: {exc}") from exc
