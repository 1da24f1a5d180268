"""The farm managers' files in docs/farm/: the Flamenco job type compiles one
``inhabit render ... --resume`` task per shot, and that command line is one
``inhabit render`` accepts; the Deadline submission script is valid sh."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from backend.cli.local_server import REPO_ROOT

FLAMENCO = REPO_ROOT / "docs" / "farm" / "flamenco" / "inhabit.js"
# What Flamenco's manager gives a job type script (author.Task/Command, path, print), in the least code.
HARNESS = r"""
const fs = require("fs"), vm = require("vm"), nodePath = require("path");
const tasks = [];
const sandbox = {
  print: () => {},
  path: { join: nodePath.join, dirname: nodePath.dirname, stem: (p) => nodePath.parse(p).name },
  author: {
    Task: (name, type) => { const t = { name, type, commands: [], addCommand(c) { this.commands.push(c); } };
                            return t; },
    Command: (type, params) => ({ type, params }),
  },
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8") + "\nthis.JOB_TYPE = JOB_TYPE;", sandbox);
const settings = JSON.parse(process.argv[3]);
sandbox.compileJob({ settings, addTask: (t) => tasks.push(t) });
console.log(JSON.stringify({ tasks, keys: sandbox.JOB_TYPE.settings.map((s) => s.key) }));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node runs the Flamenco job type's JavaScript")
def test_flamenco_job_type_makes_one_resuming_task_per_shot(tmp_path):
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    settings = {"blendfile": "/shots/sh010.blend", "shots": "/shots/sh020.blend; /shots/sh010.blend",
                "frames": "1-48", "armature": "Rig", "reference": "/shots/ref.png", "engine": "wan-animate",
                "server": "frontend:5557", "output_root": "/shots/out", "inhabit": "inhabit",
                "curve_server_key": "/keys/server.key", "curve_client_key": "/keys/client.key_secret",
                "extra_args": "--samples 4"}
    out = subprocess.run(["node", str(harness), str(FLAMENCO), json.dumps(settings)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    compiled = json.loads(out.stdout)
    assert [t["name"] for t in compiled["tasks"]] == ["inhabit-sh010", "inhabit-sh020"]
    for task, shot in zip(compiled["tasks"], ("/shots/sh010.blend", "/shots/sh020.blend")):
        (command,) = task["commands"]
        assert command["type"] == "exec" and command["params"]["exe"] == "inhabit"
        args = command["params"]["args"]
        assert args[:2] == ["render", shot] and "--resume" in args and args[-2:] == ["--samples", "4"]
        # The command line is one `inhabit render` parses.
        import argparse

        from backend.cli.commands import render
        parser = argparse.ArgumentParser()
        render.add_parser(parser.add_subparsers())
        parsed = parser.parse_args(args)
        assert parsed.server == "frontend:5557" and parsed.resume and parsed.armature == "Rig"


def test_deadline_submission_script_is_valid_sh():
    script = REPO_ROOT / "docs" / "farm" / "deadline" / "submit_inhabit.sh"
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
    assert "--resume" in script.read_text() and "Plugin=CommandLine" in script.read_text()
