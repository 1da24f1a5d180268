"""Image metrics (numpy + cv2), the one home of SSIM and PSNR: the demo's
metrics.json, ``inhabit eval`` and the tests score with these."""
from __future__ import annotations

import math

import cv2
import numpy as np


def _gray(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img, np.uint8), cv2.COLOR_RGB2GRAY)
    return img.astype(np.float64)


def ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM on grayscale uint8 images (Gaussian window 11, sigma 1.5,
    K1=0.01, K2=0.03, L=255) -- the convention of the published numbers."""
    x, y = _gray(a), _gray(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {list(x.shape)} vs {list(y.shape)}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img):
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images with MAX 255 (inf when identical)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {list(a.shape)} vs {list(b.shape)}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def psnr_from(sse: float, count: int) -> float:
    """PSNR from a summed squared error over ``count`` values (NaN when empty, 100 when exact)."""
    if count == 0:
        return float("nan")
    mse = sse / count
    return 100.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def frame_score(result: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(SSIM on grayscale, PSNR on uint8 with MAX 255) of one frame."""
    return ssim_gray(result, truth), psnr(result, truth)


def mean_score(scores: list) -> dict:
    """Mean SSIM and PSNR over frames; PSNR averages finite values (identical
    frames have infinite PSNR)."""
    if not scores:
        raise ValueError("no frames to score")
    finite = [p for _, p in scores if math.isfinite(p)] or [100.0]
    return {"ssim": round(float(np.mean([s for s, _ in scores])), 4), "psnr": round(float(np.mean(finite)), 2)}
