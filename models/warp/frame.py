"""One preview frame: pose the reference, then composite it into the scene."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

from blender_addon.core.conventions import has_surface
from models.aa2.conditioning import composite_character

from models.errors import InputError
from .bones import solve_pose
from .skinning import ReferenceRig, warp_reference
from .targets import usable_keypoints




@dataclass(frozen=True)
class CompositeOptions:
    feather: float = 1.5           # px, inward softening of the matte
    match_brightness: bool = True
    mask_margin: int = 8           # px around the character mask the warp may paint; -1: no limit


def render_frame(ref: ReferenceRig, inputs: Mapping[str, np.ndarray], opts: CompositeOptions,
                 *, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rgba uint8 [H, W, 4], matte uint8 [H, W]) for one frame's inputs."""
    env = np.asarray(inputs["environment"])
    h, w = env.shape[:2]
    kp = np.asarray(inputs["keypoints"], np.float32)
    mask = inputs.get("character_mask")
    usable = usable_keypoints(kp, h, w, index=index)
    if usable is None:
        # The character is not in view this frame: the environment alone.
        return _environment_only(env)
    try:
        pose = solve_pose(ref.keypoints, kp[:, :2], usable, kp[:, 2])
    except ValueError as exc:
        where = f"frame {index}" if index is not None else "frame"
        raise InputError(f"{where}: cannot pose the character: {exc}", field="frame.keypoints") from exc
    character, alpha = warp_reference(ref, pose, h, w)

    char_depth = inputs.get("character_depth")
    scene_depth = inputs.get("scene_depth")
    if scene_depth is not None and char_depth is None:
        char_depth = _depth_from_keypoints(kp, usable, h, w)
    if char_depth is not None and not has_surface(np.asarray(char_depth)).any():
        char_depth = _depth_from_keypoints(kp, usable, h, w)

    labels = inputs.get("object_labels")
    if labels is not None and char_depth is not None:
        # Tagged interactive objects keep their pixels wherever Blender says the
        # character has no surface: the approximate warp must not paint over the
        # box the hand only reaches for. Where the character is there, depth decides.
        no_body = ~has_surface(np.asarray(char_depth))
        alpha = np.where((np.asarray(labels) > 0) & no_body, 0.0, alpha).astype(np.float32)

    region = None
    if mask is not None and opts.mask_margin >= 0:
        m = (np.asarray(mask) > 127).astype(np.uint8)
        if not m.any():
            # Blender renders no character pixel this frame: nothing to paint.
            return _environment_only(env)
        if opts.mask_margin > 0:
            k = 2 * opts.mask_margin + 1
            m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        region = m
    if region is not None:
        alpha = alpha * (region > 0)
    box = _character_box(alpha, margin=CROP_MARGIN + int(np.ceil(3 * opts.feather)))
    if box is None:
        return _environment_only(env)
    # Composite only around the character: outside it the result is the
    # environment anyway, and full-frame float work would triple the frame time.
    ys, xs = box
    crop = lambda a: None if a is None else np.asarray(a)[ys, xs]  # noqa: E731
    crop_depth = crop(char_depth)
    if crop_depth is not None and not has_surface(crop_depth).any():
        # The body lies outside the crop (the warp and Blender disagree): the
        # body's median depth is the honest guess for the whole crop.
        full = np.asarray(char_depth)
        crop_depth = np.full(crop_depth.shape, float(np.median(full[has_surface(full)])), np.float32)
    rgba, matte = _environment_only(env)
    rgba[ys, xs], matte[ys, xs] = composite_character(
        env[ys, xs], character[ys, xs], alpha[ys, xs],
        character_depth=crop_depth, scene_depth=crop(scene_depth),
        feather_px=opts.feather, match_brightness=opts.match_brightness, region=crop(region))
    return rgba, matte


# Context kept around the character when compositing a crop: the brightness
# match looks at a ring of about 8 px around the matte.
CROP_MARGIN = 16


def _character_box(alpha: np.ndarray, margin: int):
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    h, w = alpha.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)))


def _environment_only(env: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = env.shape[:2]
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = env
    rgba[..., 3] = 255
    return rgba, np.zeros((h, w), np.uint8)


def _depth_from_keypoints(kp: np.ndarray, usable: np.ndarray, h: int, w: int) -> np.ndarray | None:
    """A flat character depth (median joint depth) when Blender sent none."""
    z = kp[usable & (kp[:, 2] > 0), 2]
    if z.size == 0:
        return None
    return np.full((h, w), float(np.median(z)), np.float32)
