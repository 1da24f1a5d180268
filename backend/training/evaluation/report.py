"""What the demo and ``inhabit eval`` show beside the scores (numpy + cv2): the
naive baseline an engine must beat, and the contact sheet."""
from __future__ import annotations


import cv2
import numpy as np

from models.aa2.conditioning import draw_skeleton


def _bbox(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def naive_baseline(environment: np.ndarray, mask: np.ndarray, reference_rgba: np.ndarray) -> np.ndarray:
    """The reference's silhouette box stretched onto the mask's box and pasted
    over the environment: no warp to the pose, no occlusion. What the engine
    must beat to be worth anything."""
    out = environment.copy()
    box, ref_box = _bbox(mask > 0), _bbox(reference_rgba[..., 3] > 0)
    if box is None or ref_box is None:
        return out
    x0, y0, x1, y1 = box
    rx0, ry0, rx1, ry1 = ref_box
    crop = reference_rgba[ry0:ry1, rx0:rx1]
    crop = cv2.resize(crop, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    a = crop[..., 3:4].astype(np.float32) / 255.0
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(crop[..., :3] * a + region * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray(img).copy()
    scale = max(0.35, img.shape[1] / 500)
    cv2.putText(img, text, (6, int(18 * scale + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, int(18 * scale + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def contact_sheet(rows: list[dict], tile: int = 192) -> np.ndarray:
    """uint8 RGB grid: one row per sampled frame, columns environment, mask,
    skeleton, result, ground truth. Each row dict holds those arrays plus
    ``frame`` and ``keypoints``."""
    if not rows:
        raise ValueError("contact sheet needs at least one frame")
    lines = []
    for row in rows:
        h, w = row["environment"].shape[:2]
        skel = draw_skeleton(row["keypoints"], h, w)
        mask = np.repeat(row["mask"][..., None], 3, axis=2)
        cells = [("environment", row["environment"]), ("mask", mask), ("skeleton", skel),
                 ("result", row["result"]), ("ground truth", row["truth"])]
        scaled = []
        for name, img in cells:
            img = cv2.resize(np.ascontiguousarray(img[..., :3]), (tile, tile * h // w), interpolation=cv2.INTER_AREA)
            scaled.append(_label(img, f"{name} f{row['frame']}" if name == "environment" else name))
        lines.append(np.hstack(scaled))
    return np.vstack(lines)


def sample_frames(count: int, n: int = 4) -> list[int]:
    """Job frame indices spread over the shot, first and last included."""
    n = max(1, min(n, count))
    return sorted({round(i * (count - 1) / max(1, n - 1)) for i in range(n)})
