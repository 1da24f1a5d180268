"""The preview engine as the server runs it: in-process context and a real ``inhabit serve``."""
from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

from backend.server.engines import registry
from backend.server.engines.base import EngineInputError, JobCancelled, AdmittedJob
from backend.server.engines.preview import PreviewEngine
from blender_addon.core import protocol
from tests.recording_context import RecordingContext
from blender_addon.core.client import Client, JobFailed, run_job
from backend.training.metrics.image import ssim_gray
from tests.test_preview_figures import K, figure, over

SIZE = 96


def walking_frames(kp, n, size=SIZE):
    env = np.zeros((size, size, 3), np.uint8)
    env[...] = (70, 90, 120)
    frames = []
    for i in range(n):
        target = kp.copy()
        target[:, 0] += 4 * i
        target[K["right_ear"]] = 0.0
        frames.append({"environment": env, "keypoints": target})
    return frames


def job_of(img, kp, n, params=None):
    engine = PreviewEngine()
    p = protocol.validate_params((*protocol.COMMON_PARAMS, *PreviewEngine.params), params or {})
    return engine, AdmittedJob(job_id="j1", engine="preview", width=SIZE, height=SIZE, frames=n, params=p,
                           reference=img, reference_keypoints=kp)


def test_engine_streams_every_frame_with_progress_and_release():
    img, kp = figure(SIZE)
    engine, job = job_of(img, kp, 4)
    engine.validate(job)
    ctx = RecordingContext(job, walking_frames(kp, 4))
    engine.run(ctx)
    assert sorted(ctx.results) == [0, 1, 2, 3] and ctx.released == 4
    assert [c[2] for c in ctx.progress_calls] == [0, 1, 2, 3] and ctx.progress_calls[-1][1] == 1.0
    rgba, matte = ctx.results[0]
    assert rgba.shape == (SIZE, SIZE, 4) and matte.shape == (SIZE, SIZE)
    assert ssim_gray(rgba, over(walking_frames(kp, 1)[0]["environment"], img)) > 0.9
    # The body walks right: its matte's centre moves 4 px a frame.
    cx = [np.nonzero(ctx.results[i][1] > 127)[1].mean() for i in range(4)]
    assert np.allclose(np.diff(cx), 4.0, atol=0.5)


def test_engine_stops_between_frames_on_cancel():
    img, kp = figure(SIZE)
    engine, job = job_of(img, kp, 5)
    ctx = RecordingContext(job, walking_frames(kp, 5), cancel_after=2)
    with pytest.raises(JobCancelled):
        engine.run(ctx)
    assert sorted(ctx.results) == [0, 1]


def test_engine_refuses_a_job_without_reference_keypoints_or_reference():
    img, kp = figure(SIZE)
    engine, job = job_of(img, None, 1)
    with pytest.raises(EngineInputError) as e:
        engine.validate(job)
    assert e.value.field == "submit.reference_keypoints"
    engine, job = job_of(None, kp, 1)
    with pytest.raises(EngineInputError) as e:
        engine.validate(job)
    assert e.value.field == "submit.reference"


def test_engine_is_registered_and_described():
    assert registry.get("preview") is PreviewEngine
    d = PreviewEngine.describe()
    assert d["required_inputs"] == ["environment", "keypoints"]
    assert {p["name"] for p in d["params"]} >= {"seed", "feather", "match_brightness", "matte_threshold"}
    for name in (*d["required_inputs"], *d["optional_inputs"]):
        assert name in protocol.FRAME_INPUTS


# -- through a real server process ----------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    from tests.serverproc import start_server
    with start_server(engines=("preview",)) as srv:
        yield srv


def test_real_server_returns_composited_frames(server):
    img, kp = figure(SIZE)
    n = 3
    frames = walking_frames(kp, n)
    spec = protocol.JobSpec(engine="preview", width=SIZE, height=SIZE, frames=n, params={"feather": 1.0})
    t0 = time.monotonic()
    with Client(server.address) as cl:
        events = run_job(cl, spec, img, enumerate(frames), reference_keypoints=kp, timeout=30)
    assert events[-1].type == protocol.DONE, server.log()
    results = {e.header["index"]: e.arrays for e in events if e.type == protocol.RESULT}
    assert sorted(results) == [0, 1, 2]
    rgba = results[1][protocol.RESULT_RGBA]
    assert rgba.shape == (SIZE, SIZE, 4) and rgba.dtype == np.uint8
    expected = over(frames[1]["environment"], np.roll(img, 4, axis=1))
    assert ssim_gray(rgba, expected) > 0.9
    assert (results[1][protocol.RESULT_MATTE] > 127).sum() > 0.9 * (img[..., 3] > 127).sum()
    assert any(e.type == protocol.PROGRESS for e in events)
    assert time.monotonic() - t0 < 30


def test_real_server_reports_bad_keypoints_with_the_field(server):
    img, kp = figure(SIZE)
    bad = kp.copy()
    bad[:, 3] = 0.0
    bad[K["neck"], 3] = 1.0
    bad[K["nose"], 3] = 1.0
    env = np.zeros((SIZE, SIZE, 3), np.uint8)
    spec = protocol.JobSpec(engine="preview", width=SIZE, height=SIZE, frames=1)
    with Client(server.address) as cl:
        with pytest.raises(JobFailed) as e:
            run_job(cl, spec, img, [(0, {"environment": env, "keypoints": bad})], reference_keypoints=kp, timeout=30)
    assert e.value.field == "frame.keypoints" and "too few usable keypoints" in str(e.value)


def test_real_server_refuses_a_submit_without_reference_keypoints_before_any_frame(server):
    if importlib.util.find_spec("mediapipe") is not None:
        pytest.skip("the optional pose detector is installed: keypoints would be detected")
    img, _ = figure(SIZE)
    spec = protocol.JobSpec(engine="preview", width=SIZE, height=SIZE, frames=1)
    env = np.zeros((SIZE, SIZE, 3), np.uint8)
    with Client(server.address) as cl:
        with pytest.raises(JobFailed) as e:
            run_job(cl, spec, img, [(0, {"environment": env, "keypoints": np.zeros((18, 4), np.float32)})],
                    timeout=30)
    assert e.value.field == "submit.reference_keypoints"
    assert "pip install mediapipe==0.10.21" in str(e.value)
