"""The loss curve as a PNG (cv2 only: no plotting library in the stack)."""
from __future__ import annotations

import cv2
import numpy as np


def smooth(values, k: int = 20) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    for i in range(v.size):
        lo = max(0, i + 1 - k)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def write_loss_curve(history: list[dict], path: str, size=(720, 400)) -> None:
    """Loss per step (grey) and its running mean over 20 steps (blue), log-scaled y."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    if len(history) >= 2:
        steps = np.array([r["step"] for r in history], np.float64)
        loss = np.log10(np.maximum([r["loss"] for r in history], 1e-8))
        lo, hi = float(loss.min()), float(loss.max()) or 1.0
        hi = hi if hi > lo else lo + 1.0
        m = 50

        def pts(ys):
            x = m + (steps - steps[0]) / max(steps[-1] - steps[0], 1) * (w - 2 * m)
            y = h - m - (ys - lo) / (hi - lo) * (h - 2 * m)
            return np.stack([x, y], 1).round().astype(np.int32)
        cv2.polylines(img, [pts(loss)], False, (190, 190, 190), 1, cv2.LINE_AA)
        cv2.polylines(img, [pts(smooth(loss))], False, (200, 80, 20), 2, cv2.LINE_AA)
        cv2.rectangle(img, (m, m), (w - m, h - m), (0, 0, 0), 1)
        for frac, val in ((0, lo), (1, hi)):
            cv2.putText(img, f"{10 ** val:.3g}", (2, int(h - m - frac * (h - 2 * m))), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"step {int(steps[0])}", (m, h - m + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"step {int(steps[-1])}", (w - m - 70, h - m + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1)
        cv2.putText(img, "training loss (log scale; blue: mean of 20 steps)", (m, m - 15),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(path + ".tmp.png", img)
    import os
    os.replace(path + ".tmp.png", path)
