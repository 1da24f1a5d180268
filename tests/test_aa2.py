"""The aa2 engine: in process with a recording context, and end to end
through ``inhabit doctor --save-tiny`` + ``inhabit serve --engine aa2`` + the real client."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from backend.server.engines import registry
from backend.server.engines.aa2 import AA2Engine
from backend.server.engines.base import EngineInputError, JobCancelled, AdmittedJob
from blender_addon.core import protocol
from tests.recording_context import RecordingContext
from models.aa2.tiny import tiny_inputs

SIZE = 64


@pytest.fixture(scope="module")
def tiny_dir(tiny_weights):
    return tiny_weights("aa2")


@pytest.fixture(scope="module")
def engine(tiny_dir):
    e = AA2Engine(device="cpu", weights=str(tiny_dir))
    e.load()
    return e


def job_frames(n, with_objects=True):
    inp = tiny_inputs(n, SIZE, SIZE, with_objects=with_objects)
    ref = inp.pop("reference")
    frames = []
    for i in range(n):
        f = {"environment": inp["environment"][i], "character_mask": inp["character_mask"][i],
             "keypoints": inp["keypoints"][i], "character_depth": inp["character_depth"][i],
             "scene_depth": inp["scene_depth"][i]}
        if with_objects:
            f["object_labels"] = inp["object_labels"][i]
        frames.append(f)
    return ref, frames


def make_job(n, ref, **params):
    p = protocol.validate_params((*protocol.COMMON_PARAMS, *AA2Engine.params), {"steps": 2, "guidance": 2.0,
                                                                "context_frames": 3, "overlap": 1, **params})
    return AdmittedJob(job_id="j1", engine="aa2", width=SIZE, height=SIZE, frames=n, params=p, reference=ref)


def test_engine_is_registered_and_described():
    assert registry.get("aa2") is AA2Engine
    d = AA2Engine.describe()
    names = [p["name"] for p in d["params"]]
    assert names == ["seed", "steps", "guidance", "context_frames", "overlap", "mask_block"]
    assert d["required_inputs"] == ["environment", "character_mask", "keypoints"]
    assert set(d["optional_inputs"]) == {"character_depth", "scene_depth", "object_labels"}
    assert d["input_window"] >= 32


def test_engine_module_does_not_import_torch():
    code = "import sys, backend.server.engines.aa2 as m; m.AA2Engine.describe(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_engine_streams_windows_with_progress_and_release(engine):
    ref, frames = job_frames(5)
    ctx = RecordingContext(make_job(5, ref), frames)
    engine.run(ctx)
    assert sorted(ctx.results) == list(range(5))
    rgba, matte = ctx.results[2]
    assert rgba.shape == (SIZE, SIZE, 4) and matte.shape == (SIZE, SIZE)
    assert ctx.released == 5
    steps = [c for c in ctx.progress_calls if c[0] == "generating"]
    assert len(steps) == 2 * 2                   # 2 windows (3 frames, overlap 1) x 2 steps
    assert steps[-1][1] == pytest.approx(1.0)
    assert [s[1] for s in steps] == sorted(s[1] for s in steps)


def test_engine_cancels_between_steps(engine):
    ref, frames = job_frames(5, with_objects=False)
    ctx = RecordingContext(make_job(5, ref), frames, cancel_at_step=1)
    with pytest.raises(JobCancelled):
        engine.run(ctx)
    assert ctx.checks == 2 and not ctx.results


def test_engine_validates_job_and_names_bad_frames(engine):
    ref, frames = job_frames(2, with_objects=False)
    with pytest.raises(EngineInputError) as e:
        engine.validate(make_job(2, None))
    assert e.value.field == "submit.reference"
    with pytest.raises(EngineInputError) as e:
        engine.validate(make_job(2, ref, context_frames=4, overlap=4))
    assert e.value.field == "params.overlap"
    frames[1] = dict(frames[1], character_mask=np.zeros((SIZE, SIZE // 2), np.uint8))
    with pytest.raises(EngineInputError) as e:
        engine.run(RecordingContext(make_job(2, ref), frames))
    assert e.value.field == "frame.character_mask"


def test_engine_without_weights_says_how_to_get_them():
    with pytest.raises(RuntimeError, match="--save-tiny"):
        AA2Engine(device="cpu").load()


def test_served_over_zeromq_end_to_end(tiny_dir):
    from blender_addon.core.client import Client, run_job
    from tests.serverproc import start_server

    ref, frames = job_frames(3)
    spec = protocol.JobSpec(engine="aa2", width=SIZE, height=SIZE, frames=3, objects=["box"],
                            params={"steps": 1, "guidance": 2.0, "context_frames": 2, "overlap": 1, "seed": 3})
    with start_server(engines=("aa2",), weights=tiny_dir, startup_timeout=60) as srv:
        with Client(srv.address) as cl:
            info = cl.info()
            assert any(e["name"] == "aa2" for e in info["engines"])
            events = run_job(cl, spec, ref, enumerate(frames), timeout=90)
        assert events[-1].type == protocol.DONE, srv.log()
    results = {e.header["index"]: e.arrays for e in events if e.type == protocol.RESULT}
    assert sorted(results) == [0, 1, 2]
    rgba = results[1][protocol.RESULT_RGBA]
    matte = results[1][protocol.RESULT_MATTE]
    assert rgba.shape == (SIZE, SIZE, 4) and matte.shape == (SIZE, SIZE) and matte.max() > 0
    # Far from the character the composite is the environment itself.
    far = np.zeros((SIZE, SIZE), bool)
    far[:, :4] = True
    assert np.array_equal(rgba[..., :3][far], frames[1]["environment"][far])
    assert any(e.type == protocol.PROGRESS and e.header.get("steps") == 1 for e in events)


def test_serve_refuses_aa2_without_weights_before_listening():
    # Asked for by name without weights: one sentence and exit 2, instead of a
    # server that accepts jobs which can only fail.
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--engine", "aa2",
                           "--bind", "tcp://127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "needs weights" in proc.stderr and "--weights DIR" in proc.stderr
    assert "listening" not in proc.stderr
