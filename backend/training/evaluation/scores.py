"""Scores that only exact labels allow (numpy + cv2), beside SSIM/PSNR.

- ``psnr_in``: PSNR over the character's exact silhouette (did it draw the
  right person in the right pose?);
- ``psnr_out``: PSNR outside the silhouette dilated by a few pixels (did it
  leave the environment alone?);
- occlusion: among the character's pixels that the environment hides (scene
  depth nearer than character depth), the share where the result shows the
  occluder (within ``OCCLUSION_TOL`` of the environment render).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..metrics.image import psnr, psnr_from, ssim_gray

OCCLUSION_TOL = 12     # 8-bit levels, max over channels
OUTSIDE_DILATE_PX = 3


def masked_sq_error(result: np.ndarray, truth: np.ndarray, region: np.ndarray) -> tuple[float, int]:
    """Sum of squared errors over ``region`` (all channels) and the count of values."""
    d = result.astype(np.float64) - truth.astype(np.float64)
    sel = d[region]
    return float((sel ** 2).sum()), int(sel.size)


def occluded_region(mask: np.ndarray, character_depth: np.ndarray, scene_depth: np.ndarray) -> np.ndarray:
    return (mask > 0) & (scene_depth < character_depth)


def shows_occluder(result: np.ndarray, environment: np.ndarray, region: np.ndarray) -> tuple[int, int]:
    """(pixels of ``region`` where the result is the environment, pixels of region)."""
    diff = np.abs(result.astype(np.int16) - environment.astype(np.int16)).max(axis=-1)
    return int((diff[region] <= OCCLUSION_TOL).sum()), int(region.sum())


class Tally:
    """Accumulates one engine's scores over frames (pooled where pooling is right)."""

    def __init__(self):
        self.ssim, self.psnr = [], []
        self.sse_in = self.n_in = self.sse_out = self.n_out = 0.0
        self.occ_ok = self.occ_all = 0

    def add(self, result: np.ndarray, truth: np.ndarray, frame: dict) -> None:
        s, p = ssim_gray(result, truth), psnr(result, truth)
        self.ssim.append(s)
        self.psnr.append(p)
        mask = frame["character_mask"] > 0
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * OUTSIDE_DILATE_PX + 1,) * 2)
        outside = cv2.dilate(mask.astype(np.uint8), kernel) == 0
        a, b = masked_sq_error(result, truth, mask)
        self.sse_in, self.n_in = self.sse_in + a, self.n_in + b
        a, b = masked_sq_error(result, truth, outside)
        self.sse_out, self.n_out = self.sse_out + a, self.n_out + b
        ok, total = shows_occluder(result, frame["environment"],
                                   occluded_region(frame["character_mask"], frame["character_depth"],
                                                   frame["scene_depth"]))
        self.occ_ok += ok
        self.occ_all += total

    def summary(self) -> dict:
        finite = [p for p in self.psnr if math.isfinite(p)] or [100.0]
        return {"frames": len(self.ssim), "ssim": round(float(np.mean(self.ssim)), 4),
                "psnr": round(float(np.mean(finite)), 2),
                "psnr_in": round(psnr_from(self.sse_in, int(self.n_in)), 2),
                "psnr_out": round(psnr_from(self.sse_out, int(self.n_out)), 2),
                "occlusion": round(self.occ_ok / self.occ_all, 4) if self.occ_all else None,
                "occluded_px": self.occ_all}
