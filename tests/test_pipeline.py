"""AnimateAnyone2Pipeline end to end on the tiny configuration."""
import numpy as np
import pytest
import torch

from models.aa2.pipeline import AnimateAnyone2Pipeline, load_pipeline, plan_windows
from models.errors import InputError
from models.aa2.tiny import tiny_inputs, tiny_pipeline

FAST = dict(steps=2, guidance=2.0, overlap=1)


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def inputs():
    return tiny_inputs(4, 64, 64)


def run(pipe, inputs, **kw):
    d = dict(inputs)
    ref = d.pop("reference")
    return pipe(ref, **d, **{**FAST, **kw})


def test_shapes_and_exact_environment_outside_region(pipe, inputs):
    out = run(pipe, inputs, context_frames=4, overlap=1)
    assert out.frames.shape == (4, 64, 64, 4) and out.frames.dtype == np.uint8
    assert out.mattes.shape == (4, 64, 64) and out.mattes.dtype == np.uint8
    assert (out.frames[..., 3] == 255).all()
    env = inputs["environment"]
    far = inputs["character_mask"] == 0
    # Well away from the character (beyond the block mask + dilation) the
    # composite is the environment bit for bit.
    import cv2
    for f in range(4):
        grown = cv2.dilate(inputs["character_mask"][f], np.ones((41, 41), np.uint8)) > 0
        assert np.array_equal(out.frames[f, ..., :3][~grown], env[f][~grown])
        assert out.mattes[f][~grown].max() == 0
        assert out.mattes[f].max() > 0
    assert far.any()


def test_scene_in_front_hides_character(pipe, inputs):
    d = dict(inputs)
    d["scene_depth"] = np.full_like(d["scene_depth"], 1.0)     # a wall in front of everything
    out = run(pipe, d, context_frames=4)
    assert out.mattes.max() == 0
    assert np.array_equal(out.frames[..., :3], d["environment"])


def test_seeded_determinism(pipe, inputs):
    a = run(pipe, inputs, seed=7, context_frames=4)
    b = run(pipe, inputs, seed=7, context_frames=4)
    c = run(pipe, inputs, seed=8, context_frames=4)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)


def test_window_covering_the_shot_equals_single_window(pipe, inputs):
    a = run(pipe, inputs, context_frames=4, overlap=0)
    b = run(pipe, inputs, context_frames=16, overlap=4)
    assert np.array_equal(a.frames, b.frames)


def test_windowed_stream_emits_each_frame_once_in_order_and_releases(pipe):
    inp = tiny_inputs(7, 64, 64, with_objects=False)
    ref = inp.pop("reference")
    asked, released, steps = [], [], []

    def get_frame(i):
        asked.append(i)
        return {k: v[i] for k, v in inp.items()}

    got = [i for i, _, _ in pipe.stream(ref, get_frame, 7, height=64, width=64, context_frames=3,
                                        on_step=steps.append, on_release=released.append, **FAST)]
    assert got == list(range(7))
    assert sorted(set(asked)) == list(range(7)) and len(asked) == 7   # each frame fetched once
    assert released == sorted(released) and released[-1] == 7
    assert len(steps) == 2 * len(plan_windows(7, 3, 1))
    assert steps[-1]["step"] == 2 and steps[-1]["window"] == len(plan_windows(7, 3, 1)) - 1


def test_cancel_from_step_callback_stops_generation(pipe, inputs):
    class Stop(Exception):
        pass

    def on_step(info):
        raise Stop

    with pytest.raises(Stop):
        run(pipe, inputs, on_step=on_step)


def test_plan_windows():
    assert plan_windows(5, 16, 4) == [(0, 5)]
    w = plan_windows(20, 8, 2)
    assert w[0] == (0, 8) and w[-1][1] == 20
    assert all(b[0] <= a[1] - 2 for a, b in zip(w, w[1:]))
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(20, 8, 8)


def test_save_load_round_trip_is_bit_exact(pipe, inputs, tmp_path):
    pipe.save_pretrained(tmp_path)
    assert list(tmp_path.glob("*/*.safetensors"))
    assert not list(tmp_path.glob("**/*.bin"))
    loaded = load_pipeline(str(tmp_path))
    assert isinstance(loaded, AnimateAnyone2Pipeline)
    for name in ("denoising_unet", "reference_unet", "pose_guider", "depth_modulation", "object_guider", "vae"):
        a, b = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert np.array_equal(run(pipe, inputs, context_frames=4).frames,
                          run(loaded, inputs, context_frames=4).frames)


def test_fusion_mode_is_saved(tmp_path):
    p = tiny_pipeline(fusion_mode="all")
    p.save_pretrained(tmp_path)
    assert load_pipeline(str(tmp_path)).config.fusion_mode == "all"
    with pytest.raises(ValueError, match="fusion_mode"):
        tiny_pipeline(fusion_mode="down")


def test_missing_weights_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_pipeline(str(tmp_path / "nowhere"))


@pytest.mark.parametrize("change, message, field", [
    (lambda d: d.update(character_mask=d["character_mask"][:3]), "character_mask has 3 frames", "frame.character_mask"),
    (lambda d: d.update(keypoints=d["keypoints"][:2]), "keypoints has 2 frames", "frame.keypoints"),
    (lambda d: d.update(character_mask=d["character_mask"][:, :32]), r"character_mask must be uint8\[64, 64\]",
     "frame.character_mask"),
    (lambda d: d.update(scene_depth=d["scene_depth"][:, :, :10]), r"scene_depth must be float32\[64, 64\]",
     "frame.scene_depth"),
    (lambda d: d.update(reference=None), "reference image is required", "submit.reference"),
    (lambda d: d.update(reference=np.zeros((8, 8), np.uint8)), "reference must be uint8", "submit.reference"),
    (lambda d: d.update(keypoints=None), "keypoints", "frame.keypoints"),
])
def test_bad_inputs_name_the_field(pipe, inputs, change, message, field):
    """The pipeline takes the protocol's input names and its typed error carries the field."""
    d = {k: v for k, v in inputs.items()}
    change(d)
    ref = d.pop("reference")
    with pytest.raises(InputError, match=message) as e:
        pipe(ref, **d, **FAST)
    assert e.value.field == field


def test_context_longer_than_motion_table_is_refused(pipe, inputs):
    with pytest.raises(ValueError, match="context_frames must be at most 32"):
        run(pipe, inputs, context_frames=33)


def test_dtype_is_chosen_at_load_and_odd_sizes_work(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    half = load_pipeline(str(tmp_path), dtype="bfloat16")
    assert half.denoising_unet.dtype == torch.bfloat16 and half.vae.dtype == torch.bfloat16
    inp = tiny_inputs(2, 40, 72, with_objects=False)      # not a multiple of the UNet's 16 px
    ref = inp.pop("reference")
    out = half(ref, **inp, steps=1, guidance=2.0, context_frames=2, overlap=0)
    assert out.frames.shape == (2, 40, 72, 4) and out.mattes.max() > 0
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_pipeline(str(tmp_path), dtype="float8")
