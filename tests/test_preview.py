"""The preview engine's parts on synthetic images: warp, composite, bad input."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from backend.server.engines.base import EngineInputError
from models.warp.frame import CompositeOptions, render_frame
from models.warp.reference import matte_plain_background, prepare_reference
from models.warp.skinning import ReferenceRig
from blender_addon.core import conventions
from backend.training.metrics.image import ssim_gray
from tests.test_preview_figures import K, figure, over, rotate_about

SHARP = CompositeOptions(feather=0.0, match_brightness=False, mask_margin=-1)


def rig_of(img, kp):
    ref = prepare_reference(img, kp)
    return ReferenceRig(ref.rgb_premult, ref.alpha, ref.keypoints)


@pytest.fixture(scope="module")
def fig():
    img, kp = figure(256)
    return img, kp, rig_of(img, kp)


def env_of(h=256, w=256, value=110):
    yy, xx = np.mgrid[0:h, 0:w]
    env = np.dstack([(xx % 256), (yy % 256), np.full((h, w), value)]).astype(np.uint8)
    return env


def test_warp_to_own_keypoints_reproduces_reference(fig):
    img, kp, rig = fig
    env = env_of()
    rgba, matte = render_frame(rig, {"environment": env, "keypoints": kp}, SHARP)
    expected = over(env, img)
    assert ssim_gray(rgba, expected) > 0.99
    assert np.abs(rgba[..., :3].astype(int) - expected).mean() < 1.0
    assert rgba.dtype == np.uint8 and rgba.shape == (256, 256, 4) and (rgba[..., 3] == 255).all()
    assert matte.shape == (256, 256) and ((matte > 127) == (img[..., 3] > 127)).mean() > 0.99


def test_translated_and_scaled_frame_follows_the_body(fig):
    img, kp, rig = fig
    target = kp.copy()
    target[:, :2] = target[:, :2] * 1.5 + (20, 10)          # bigger frame, body moved
    env = env_of(400, 400)
    _, matte = render_frame(rig, {"environment": env, "keypoints": target}, SHARP)
    ys, xs = np.nonzero(matte > 127)
    ry, rx = np.nonzero(img[..., 3] > 127)
    assert abs(xs.min() - (rx.min() * 1.5 + 20)) <= 3 and abs(ys.max() - (ry.max() * 1.5 + 10)) <= 3
    assert abs(len(xs) / len(rx) - 2.25) < 0.15


def test_moving_one_forearm_moves_its_pixels_and_not_the_torso(fig):
    img, kp, rig = fig
    env = env_of()
    still, _ = render_frame(rig, {"environment": env, "keypoints": kp}, SHARP)
    elbow = kp[K["left_elbow"], :2].astype(np.float64)
    wrist = kp[K["left_wrist"], :2].astype(np.float64)
    moved_kp = kp.copy()
    moved_kp[K["left_wrist"], :2] = rotate_about(wrist, elbow, -60.0)   # forearm swings out
    moved, _ = render_frame(rig, {"environment": env, "keypoints": moved_kp}, SHARP)

    # Torso, head, legs and the other arm: untouched, pixel for pixel.
    torso = np.zeros((256, 256), bool)
    torso[60:250, 100:148] = True
    assert np.array_equal(moved[torso], still[torso])
    # A point two thirds down the forearm lands where the known rotation puts it.
    src = elbow + (wrist - elbow) * 0.66
    dst = rotate_about(src, elbow, -60.0)
    sx, sy = np.rint(src).astype(int)
    dx, dy = np.rint(dst).astype(int)
    assert np.abs(moved[dy, dx, :3].astype(int) - img[sy, sx, :3].astype(int)).max() <= 40
    # Where the forearm was (below the elbow zone), the environment shows now.
    assert np.abs(moved[sy, sx, :3].astype(int) - env[sy, sx].astype(int)).max() <= 2


def test_bending_a_knee_does_not_tear(fig):
    img, kp, rig = fig
    target = kp.copy()
    knee = target[K["right_knee"], :2].astype(np.float64)
    target[K["right_ankle"], :2] = rotate_about(target[K["right_ankle"], :2], knee, 70.0)
    _, matte = render_frame(rig, {"environment": env_of(), "keypoints": target}, SHARP)
    # Walk along thigh then shin: the matte is continuous through the knee.
    hip = target[K["right_hip"], :2]
    ankle = target[K["right_ankle"], :2]
    path = [hip + (knee - hip) * t for t in np.linspace(0.2, 1, 20)] + \
           [knee + (ankle - knee) * t for t in np.linspace(0, 0.8, 20)]
    values = [matte[int(round(y)), int(round(x))] for x, y in path]
    assert min(values) > 200


def test_nearer_scene_depth_removes_exactly_those_pixels(fig):
    img, kp, rig = fig
    env = env_of()
    char_depth = np.where(img[..., 3] > 0, 3.0, conventions.NO_SURFACE_DEPTH).astype(np.float32)
    far = np.full((256, 256), 10.0, np.float32)
    pillar = far.copy()
    pillar[:, 120:150] = 2.0                    # a pillar nearer than the body (z = 3)
    inputs = {"environment": env, "keypoints": kp, "character_depth": char_depth}
    free, free_matte = render_frame(rig, {**inputs, "scene_depth": far}, SHARP)
    hidden, hidden_matte = render_frame(rig, {**inputs, "scene_depth": pillar}, SHARP)
    cols = np.zeros((256, 256), bool)
    cols[:, 120:150] = True
    assert np.array_equal(hidden[cols][:, :3], env[cols])
    assert (hidden_matte[cols] == 0).all()
    assert np.array_equal(hidden[~cols], free[~cols])
    assert np.array_equal(hidden_matte[~cols], free_matte[~cols])
    assert (free_matte[cols] > 0).sum() > 500   # the body really was there


def test_interactive_object_stays_where_the_body_is_not(fig):
    img, kp, rig = fig
    env = env_of()
    # The true body (Blender's silhouette) is thinner than the reference: only the torso box.
    body = np.zeros((256, 256), bool)
    body[70:150, 100:156] = True
    char_depth = np.where(body, 3.0, conventions.NO_SURFACE_DEPTH).astype(np.float32)
    scene = np.full((256, 256), 10.0, np.float32)
    labels = np.zeros((256, 256), np.uint8)
    labels[100:140, 150:180] = 1              # a box at the left hand, behind it in depth
    scene[labels > 0] = 5.0
    rgba, matte = render_frame(rig, {"environment": env, "keypoints": kp, "character_depth": char_depth,
                                     "scene_depth": scene, "object_labels": labels}, SHARP)
    box_only = (labels > 0) & ~body
    assert np.array_equal(rgba[box_only][:, :3], env[box_only])
    overlap = (labels > 0) & body & (img[..., 3] > 0)
    assert overlap.any() and (matte[overlap] > 0).all()   # the body in front of the box still shows


def test_mask_margin_limits_the_warp_to_the_character_mask(fig):
    img, kp, rig = fig
    env = env_of()
    mask = np.zeros((256, 256), np.uint8)
    mask[60:160, 90:170] = 255
    opts = CompositeOptions(feather=0.0, match_brightness=False, mask_margin=4)
    rgba, matte = render_frame(rig, {"environment": env, "keypoints": kp, "character_mask": mask}, opts)
    outside = np.ones((256, 256), bool)
    outside[56:164, 86:174] = False
    assert np.array_equal(rgba[outside][:, :3], env[outside]) and (matte[outside] == 0).all()


def test_occluded_and_absent_keypoints_512(fig):
    img, kp = figure(512)
    rig = rig_of(img, kp)
    target = kp.copy()
    target[:, 0] += 30
    target[K["right_elbow"], 3] = conventions.VIS_OCCLUDED      # behind a pillar: still drives the warp
    target[K["right_wrist"], 3] = conventions.VIS_OCCLUDED
    target[K["right_ear"]] = 0.0                              # unmapped: falls back to the head
    target[K["left_ear"]] = 0.0
    target[K["left_wrist"], 3] = conventions.VIS_ABSENT          # inside the frame, untrusted
    env = env_of(512, 512)
    rgba, matte = render_frame(rig, {"environment": env, "keypoints": target}, CompositeOptions())
    ys, xs = np.nonzero(matte > 127)
    assert len(xs) > 0.9 * (img[..., 3] > 127).sum()
    assert abs(xs.mean() - (np.nonzero(img[..., 3] > 127)[1].mean() + 30)) < 3


def test_character_entering_from_off_frame(fig):
    img, kp, rig = fig
    target = kp.copy()
    target[:, 0] -= 120                                       # mostly left of the frame
    off = target[:, 0] < 0
    target[off, 3] = conventions.VIS_ABSENT                      # as the add-on marks off-frame joints
    _, matte = render_frame(rig, {"environment": env_of(), "keypoints": target}, SHARP)
    # Joints off the frame still carry their projected position: the visible
    # part of the body is exactly the reference moved 120 px left.
    expected = np.zeros((256, 256), bool)
    expected[:, :136] = img[:, 120:, 3] > 127
    got = matte > 127
    assert expected.sum() > 1000
    assert (got & expected).sum() / (got | expected).sum() > 0.97


def test_no_character_in_view_gives_the_environment():
    img, kp = figure(64)
    rig = rig_of(img, kp)
    env = env_of(64, 64)
    rgba, matte = render_frame(rig, {"environment": env, "keypoints": np.zeros((18, 4), np.float32)}, SHARP)
    assert np.array_equal(rgba[..., :3], env) and not matte.any()
    # Keypoints known but Blender's character mask empty (say, hidden in a doorway).
    empty = np.zeros((64, 64), np.uint8)
    rgba, matte = render_frame(rig, {"environment": env, "keypoints": kp, "character_mask": empty},
                               CompositeOptions())
    assert np.array_equal(rgba[..., :3], env) and not matte.any()


def test_deterministic(fig):
    img, kp, rig = fig
    target = kp.copy()
    target[K["left_knee"], :2] += (12, -5)
    inputs = {"environment": env_of(), "keypoints": target}
    a = render_frame(rig, inputs, CompositeOptions())
    b = render_frame(rig_of(img, kp), inputs, CompositeOptions())
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# -- bad input --------------------------------------------------------------------------
def test_too_few_visible_keypoints(fig):
    img, kp, rig = fig
    target = np.zeros_like(kp)
    target[K["neck"]] = kp[K["neck"]]
    target[K["nose"]] = kp[K["nose"]]
    with pytest.raises(EngineInputError, match="too few usable keypoints") as e:
        render_frame(rig, {"environment": env_of(), "keypoints": target}, SHARP, index=3)
    assert e.value.field == "frame.keypoints" and "frame 3" in str(e.value)


def test_visible_keypoints_far_outside_the_frame(fig):
    img, kp, rig = fig
    target = kp.copy()
    target[K["left_wrist"], :2] = (5000.0, 40.0)
    with pytest.raises(EngineInputError, match="left_wrist.*far outside") as e:
        render_frame(rig, {"environment": env_of(), "keypoints": target}, SHARP)
    assert e.value.field == "frame.keypoints"


def test_nan_keypoints(fig):
    img, kp, rig = fig
    target = kp.copy()
    target[2, 0] = np.nan
    with pytest.raises(EngineInputError, match="NaN") as e:
        render_frame(rig, {"environment": env_of(), "keypoints": target}, SHARP)
    assert e.value.field == "frame.keypoints"


@pytest.mark.parametrize("bad, message", [
    (np.zeros((17, 4), np.float32), r"\[18, 4\]"),
    (np.zeros((18, 4), np.float32), "at least 3 of neck, shoulders and hips"),
])
def test_bad_reference_keypoints(bad, message):
    img, _ = figure(64)
    with pytest.raises(EngineInputError, match=message) as e:
        prepare_reference(img, bad)
    assert e.value.field == "submit.reference_keypoints"


def test_missing_reference_keypoints_name_the_optional_detector(monkeypatch):
    img, _ = figure(64)
    monkeypatch.setitem(sys.modules, "mediapipe", None)   # make sure it is absent, as here
    with pytest.raises(EngineInputError, match=r"pip install mediapipe==0\.10\.21") as e:
        prepare_reference(img, None)
    assert e.value.field == "submit.reference_keypoints"


def test_bad_reference_image():
    with pytest.raises(EngineInputError, match="uint8") as e:
        prepare_reference(np.zeros((64, 64), np.float32), None)
    assert e.value.field == "submit.reference"
    _, kp = figure(64)
    with pytest.raises(EngineInputError, match="empty matte"):
        prepare_reference(np.zeros((64, 64, 4), np.uint8), kp)


def test_rgb_reference_is_matted_from_its_plain_background():
    img, kp = figure(128)
    backdrop = np.array([235, 240, 245], np.uint8)
    rgb = over(np.broadcast_to(backdrop, (128, 128, 3)), img)
    alpha = matte_plain_background(rgb)
    truth = img[..., 3] > 127
    got = alpha > 0.5
    iou = (got & truth).sum() / (got | truth).sum()
    assert iou > 0.95
    ref = prepare_reference(rgb, kp)
    assert (ref.alpha > 0.5).sum() == pytest.approx(got.sum(), abs=2)   # cropped, nothing lost


def test_side_view_and_end_on_limbs_stay_finite(fig):
    """A frontal reference posed on a profile skeleton (shoulders and hips
    overlapping, an arm pointing at the camera) still gives a sane body."""
    img, kp, rig = fig
    target = kp.copy()
    cx = 128.0
    for name in ("right_shoulder", "left_shoulder", "right_hip", "left_hip", "right_knee", "left_knee",
                 "right_ankle", "left_ankle", "right_ear", "left_ear", "right_eye", "left_eye"):
        target[K[name], 0] = cx + (1.0 if name.startswith("left") else -1.0)
    target[K["right_elbow"], :2] = target[K["right_shoulder"], :2] + (0.5, 0.5)   # end-on upper arm
    rgba, matte = render_frame(rig, {"environment": env_of(), "keypoints": target}, CompositeOptions())
    ys, xs = np.nonzero(matte > 127)
    assert len(xs) > 0.25 * (img[..., 3] > 127).sum()
    assert ys.min() >= 10 and ys.max() <= 250 and xs.min() >= 60 and xs.max() <= 200


def test_frame_and_reference_sharing_no_torso_point_is_a_clear_error():
    img, kp = figure(64)
    ref_kp = kp.copy()
    for name in ("right_hip", "left_hip"):
        ref_kp[K[name], 3] = 0.0                 # the reference shows neck and shoulders only
    rig = rig_of(img, ref_kp)
    target = kp.copy()
    for name in ("neck", "right_shoulder", "left_shoulder"):
        target[K[name], 3] = 0.0                 # the frame shows the hips only (inside the frame)
    with pytest.raises(EngineInputError, match="cannot pose the character") as e:
        render_frame(rig, {"environment": env_of(64, 64), "keypoints": target}, SHARP, index=0)
    assert e.value.field == "frame.keypoints"


@pytest.mark.parametrize("forearm_depth, arm_in_front", [(2.6, True), (3.4, False)])
def test_a_limb_crossing_the_torso_is_layered_by_keypoint_depth(fig, forearm_depth, arm_in_front):
    img, kp, rig = fig
    env = env_of()
    still, _ = render_frame(rig, {"environment": env, "keypoints": kp}, SHARP)
    target = kp.copy()
    elbow = target[K["left_elbow"], :2].astype(np.float64)
    target[K["left_wrist"], :2] = (112.0, 118.0)          # the left hand reaches across the belly
    target[K["left_elbow"], 2] = forearm_depth
    target[K["left_wrist"], 2] = forearm_depth
    crossed, _ = render_frame(rig, {"environment": env, "keypoints": target}, SHARP)
    # Middle of the forearm, well inside the torso's silhouette.
    mid = elbow + (np.array([112.0, 118.0]) - elbow) * 0.7
    x, y = np.rint(mid).astype(int)
    torso_here = np.abs(crossed[y - 1:y + 2, x - 1:x + 2, :3].astype(int) -
                        still[y - 1:y + 2, x - 1:x + 2, :3].astype(int)).max()
    if arm_in_front:
        assert torso_here > 40          # the forearm's colours cover the torso
    else:
        assert torso_here <= 3          # the torso hides the forearm


def test_empty_reference_border_changes_nothing(fig):
    img, kp, rig = fig
    padded = np.zeros((456, 356, 4), np.uint8)
    padded[150:406, 60:316] = img
    padded_kp = kp.copy()
    padded_kp[:, :2] += (60, 150)
    target = kp.copy()
    target[K["right_wrist"], :2] += (-20, -25)
    inputs = {"environment": env_of(), "keypoints": target}
    a = render_frame(rig, inputs, SHARP)
    b = render_frame(rig_of(padded, padded_kp), inputs, SHARP)
    assert np.abs(a[0].astype(int) - b[0].astype(int)).max() <= 1
    assert np.abs(a[1].astype(int) - b[1].astype(int)).max() <= 1
    assert prepare_reference(padded, padded_kp).alpha.shape[0] < 256


def test_random_keypoints_give_a_frame_or_a_named_error():
    """Random skeletons, sizes and optional inputs: never a crash, never NaN."""
    rng = np.random.default_rng(7)
    img, kp = figure(64)
    rig = rig_of(img, kp)
    outcomes = {"frame": 0, "error": 0}
    for it in range(60):
        h, w = int(rng.integers(8, 96)), int(rng.integers(8, 96))
        t = np.zeros((18, 4), np.float32)
        if it % 2:
            t[:, :2] = kp[:, :2] * rng.uniform(0.05, 3.0) + rng.uniform(-50, 50, 2) + rng.normal(0, 8, (18, 2))
        else:
            t[:, 0], t[:, 1] = rng.uniform(-w, 2 * w, 18), rng.uniform(-h, 2 * h, 18)
        t[:, 2] = rng.uniform(0.0, 5.0, 18)
        t[:, 3] = rng.choice([0.0, 0.5, 1.0], 18)
        inputs = {"environment": env_of(h, w), "keypoints": t}
        if it % 3 == 0:
            inputs["scene_depth"] = rng.uniform(1, 6, (h, w)).astype(np.float32)
            inputs["character_depth"] = np.where(rng.random((h, w)) < 0.3, 3.0, conventions.NO_SURFACE_DEPTH
                                                 ).astype(np.float32)
        if it % 4 == 0:
            inputs["character_mask"] = (rng.random((h, w)) < 0.5).astype(np.uint8) * 255
            inputs["object_labels"] = (rng.random((h, w)) < 0.2).astype(np.uint8)
        try:
            rgba, matte = render_frame(rig, inputs, CompositeOptions(feather=float(rng.uniform(0, 4))))
        except EngineInputError as e:
            assert e.field == "frame.keypoints"
            outcomes["error"] += 1
            continue
        assert rgba.shape == (h, w, 4) and rgba.dtype == np.uint8 and matte.shape == (h, w)
        outcomes["frame"] += 1
    assert outcomes["frame"] > 20 and outcomes["error"] > 5
