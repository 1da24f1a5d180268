"""The shared image-space conditioning: masks, skeletons, composite, metrics."""
import math

import numpy as np
import pytest

from blender_addon.core.conventions import NO_SURFACE_DEPTH, NUM_KEYPOINTS
from models.aa2 import conditioning as C


def disc_mask(h=96, w=80, cy=50, cx=40, r=20):
    yy, xx = np.mgrid[:h, :w]
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).astype(np.uint8) * 255


# -- shape-agnostic mask -------------------------------------------------------------------
def diamond_mask(h=96, w=96, c=48, r=30):
    yy, xx = np.mgrid[:h, :w]
    return ((np.abs(yy - c) + np.abs(xx - c)) <= r).astype(np.uint8) * 255


def test_agnostic_mask_covers_character_and_stays_in_its_box():
    m = diamond_mask()
    out = C.shape_agnostic_mask(m, block=(10, 10))
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 255}
    assert (out[m > 0] == 255).all(), "every character pixel must be covered"
    ys, xs = np.nonzero(m)
    box = np.zeros_like(m, bool)
    box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
    assert not out[~box].any(), "nothing outside the bounding box"
    # Blocky: more pixels than the disc, fewer than the full box (corners stay empty).
    assert m.astype(bool).sum() < (out > 0).sum() < box.sum()


def test_agnostic_mask_hides_the_outline():
    # Two different shapes with the same box and coarse blocks give the same mask.
    a = disc_mask(r=20)
    b = np.zeros_like(a)
    b[30:71, 20:61] = 255
    b[30:36, 20:26] = 0  # notch a corner: the exact outline differs
    oa = C.shape_agnostic_mask(a, block=(41, 41))
    ob = C.shape_agnostic_mask(b, block=(41, 41))
    assert (oa[a > 0] == 255).all() and (ob[b > 0] == 255).all(), "each mask covers its character"
    assert (oa == ob).all()


def test_agnostic_mask_random_blocks_are_seeded_and_cover():
    m = disc_mask()
    r1 = C.shape_agnostic_mask(m, rng=np.random.default_rng(3))
    r2 = C.shape_agnostic_mask(m, rng=np.random.default_rng(3))
    assert (r1 == r2).all()
    assert (r1[m > 0] == 255).all()


def test_agnostic_mask_empty_and_bad_input():
    assert not C.shape_agnostic_mask(np.zeros((16, 16), np.uint8)).any()
    with pytest.raises(ValueError, match="2-D"):
        C.shape_agnostic_mask(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="block"):
        C.shape_agnostic_mask(np.zeros((4, 4), np.uint8), block=0)


# -- skeleton ---------------------------------------------------------------------------
def standing_keypoints(h=128, w=96):
    kp = np.zeros((NUM_KEYPOINTS, 4), np.float32)
    pts = {0: (48, 20), 1: (48, 35), 2: (36, 36), 3: (30, 55), 4: (28, 72), 5: (60, 36), 6: (66, 55),
           7: (68, 72), 8: (40, 75), 9: (40, 97), 10: (40, 118), 11: (56, 75), 12: (56, 97), 13: (56, 118),
           14: (45, 17), 15: (51, 17)}
    for i, (x, y) in pts.items():
        kp[i] = (x, y, 3.0 + 0.01 * i, 1.0)
    return kp  # ears (16, 17) absent


def test_skeleton_draws_limbs_in_openpose_colours_and_skips_absent_points():
    kp = standing_keypoints()
    sk = C.draw_skeleton(kp, 128, 96)
    assert sk.shape == (128, 96, 3) and sk.dtype == np.uint8
    # Middle of the right upper arm (limb 2: joints 2-3) carries limb 2's colour.
    assert tuple(sk[45, 33]) == tuple(C.OPENPOSE_COLORS[2])
    # Remove the right wrist: the forearm disappears.
    kp2 = kp.copy()
    kp2[4, 3] = 0
    sk2 = C.draw_skeleton(kp2, 128, 96)
    assert sk[64, 29].any() and not sk2[64, 29].any()


def test_skeleton_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\[18, 4\]"):
        C.draw_skeleton(np.zeros((17, 4), np.float32), 32, 32)


def test_structured_depth_only_on_skeleton_and_nearer_is_brighter():
    h, w = 128, 96
    kp = standing_keypoints(h, w)
    sk = C.draw_skeleton(kp, h, w)
    depth = np.full((h, w), NO_SURFACE_DEPTH, np.float32)
    depth[10:125, 20:76] = np.linspace(2.0, 4.0, 56, dtype=np.float32)[None, :]  # left nearer
    sd = C.structured_depth(depth, sk)
    drawn = sk.max(axis=2) > 0
    assert not sd[~drawn].any()
    assert (sd[drawn] > 0).all() and sd.max() <= 1.0
    assert sd[64, 29] > sd[64, 67], "the nearer (left-of-image) arm must be brighter"


def test_fill_missing_depth_takes_nearest_surface():
    d = np.full((5, 7), NO_SURFACE_DEPTH, np.float32)
    d[2, 1] = 1.0
    d[2, 5] = 9.0
    f = C.fill_missing_depth(d)
    assert f[2, 0] == 1.0 and f[0, 1] == 1.0 and f[2, 6] == 9.0 and f[4, 5] == 9.0
    assert f[2, 1] == 1.0 and f[2, 5] == 9.0


# -- composite ---------------------------------------------------------------------------
def scene(h=64, w=64):
    env = np.full((h, w, 3), 100, np.uint8)
    env[:, :, 2] = 160
    char = np.zeros((h, w, 3), np.uint8)
    char[16:48, 16:48] = (200, 40, 40)
    alpha = np.zeros((h, w), np.float32)
    alpha[16:48, 16:48] = 1.0
    return env, char, alpha


def test_composite_occlusion_removes_exactly_the_nearer_pixels():
    env, char, alpha = scene()
    cdepth = np.full(alpha.shape, NO_SURFACE_DEPTH, np.float32)
    cdepth[16:48, 16:48] = 5.0
    sdepth = np.full(alpha.shape, 10.0, np.float32)
    sdepth[:, 30:36] = 3.0  # a pillar in front of the character
    rgba, matte = C.composite_character(env, char, alpha, character_depth=cdepth, scene_depth=sdepth,
                                        feather_px=0, match_brightness=False)
    assert (matte[16:48, 30:36] == 0).all()
    assert (rgba[16:48, 30:36, :3] == env[16:48, 30:36]).all()
    assert (matte[16:48, 16:30] == 255).all() and (matte[16:48, 36:48] == 255).all()
    assert (rgba[20, 20, :3] == (200, 40, 40)).all()
    assert (rgba[..., 3] == 255).all()


def test_composite_region_keeps_environment_bit_exact_outside():
    env, char, alpha = scene()
    env = np.random.default_rng(0).integers(0, 256, env.shape, dtype=np.uint8)
    region = np.zeros(alpha.shape, np.uint8)
    region[20:40, 20:40] = 255
    rgba, matte = C.composite_character(env, char, alpha, region=region, feather_px=2.0)
    assert (rgba[..., :3][region == 0] == env[region == 0]).all()
    assert not matte[region == 0].any()


def test_composite_feathers_inward_without_halo_and_matches_brightness():
    env, char, alpha = scene()
    rgba, matte = C.composite_character(env, char, alpha, feather_px=2.0, match_brightness=False)
    assert (matte[alpha == 0] == 0).all(), "feathering must not spread outward"
    assert 0 < matte[16, 32] < 255 and matte[32, 32] == 255
    # A character standing in the shadowed half of a bright room is toned down;
    # the same character in a uniformly lit room keeps its own colours.
    shadowed = np.full_like(env, 200)
    shadowed[:, :56] = 50  # the character (columns 16-47) and its surroundings are in shadow
    bright_char = np.full_like(char, 230)
    rgba_shadow, _ = C.composite_character(shadowed, bright_char, alpha, feather_px=0)
    assert rgba_shadow[32, 32, 0] < 230, "a character in a shadow is darkened"
    assert rgba_shadow[32, 32, 0] >= int(230 * 0.7) - 1
    uniform = np.full_like(env, 60)
    rgba_uniform, _ = C.composite_character(uniform, bright_char, alpha, feather_px=0)
    assert rgba_uniform[32, 32, 0] == 230, "uniform light: albedo is not mistaken for exposure"


def test_composite_names_bad_shapes():
    env, char, alpha = scene()
    with pytest.raises(ValueError, match="character"):
        C.composite_character(env, char[:10], alpha)
    with pytest.raises(ValueError, match="alpha"):
        C.composite_character(env, char, alpha[:10])


# -- metrics ---------------------------------------------------------------------------
def test_metrics_identity_and_ordering():
    from backend.training.metrics import image as C
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    assert C.ssim_gray(img, img) == pytest.approx(1.0)
    assert C.psnr(img, img) == math.inf
    noisy = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    noisier = np.clip(img.astype(int) + rng.integers(-60, 61, img.shape), 0, 255).astype(np.uint8)
    assert C.ssim_gray(img, noisy) > C.ssim_gray(img, noisier)
    assert C.psnr(img, noisy) > C.psnr(img, noisier) > 0
    # PSNR convention: MAX 255 on uint8.
    a = np.zeros((4, 4), np.uint8)
    b = np.full((4, 4), 255, np.uint8)
    assert C.psnr(a, b) == pytest.approx(0.0)
