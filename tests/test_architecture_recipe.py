"""docs/architecture.md's "Add an engine" recipe, run as written: its code
block is saved as a module and served by a real ``inhabit serve``, and a real
client runs a job on it. If the recipe drifts from the interface, this fails."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from backend.cli.local_server import REPO_ROOT
from blender_addon.core import protocol
from blender_addon.core.client import Client, JobFailed, run_job
from tests.serverproc import start_server

DOC = REPO_ROOT / "docs" / "architecture.md"


def recipe_code() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Add an engine"):text.index("### Add a frame input")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the recipe holds one whole engine"
    return blocks[0]


@pytest.fixture(scope="module")
def recipe_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    (folder / "recipe_engine.py").write_text(recipe_code(), encoding="utf-8")
    path = os.pathsep.join((str(REPO_ROOT), str(folder)))
    with start_server(("recipe_engine:TintEngine",), env={"PYTHONPATH": path}) as srv:
        yield srv


def test_recipe_engine_serves_a_job(recipe_server):
    h = w = 16
    env = np.full((h, w, 3), 100, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[4:12, 4:12] = 255
    cl = Client(recipe_server.address)
    try:
        info = cl.info()
        (engine,) = info["engines"]
        assert engine["name"] == "tint" and engine["required_inputs"] == ["environment", "character_mask"]
        spec = protocol.JobSpec(engine="tint", width=w, height=h, frames=3, params={"strength": 1.0})
        events = run_job(cl, spec, None, ((i, {"environment": env, "character_mask": mask}) for i in range(3)),
                         timeout=30)
        results = [e for e in events if e.type == protocol.RESULT]
        assert events[-1].type == protocol.DONE and len(results) == 3
        rgba = results[0].arrays[protocol.RESULT_RGBA]
        assert tuple(rgba[8, 8, :3]) == (255, 0, 255) and tuple(rgba[0, 0, :3]) == (100, 100, 100)
        # The recipe's validate: a job-level check with its field, before anything is queued.
        with pytest.raises(JobFailed, match="multiples of 8"):
            run_job(cl, protocol.JobSpec(engine="tint", width=12, height=16, frames=1), None, [], timeout=30)
    finally:
        cl.close()
