"""``inhabit dataset make``: same seed same bytes, resumable, labels checked against the geometry."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from backend.training.data import layout
from backend.cli.local_server import REPO_ROOT


def make(out, *extra, clips=2, env=None):
    return subprocess.run([sys.executable, "-m", "backend.cli", "dataset", "make", "--out", str(out), "--clips",
                           str(clips), "--frames", "2", "--size", "32", "--samples", "1", *map(str, extra)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)


def user_env(home):
    """This environment as a user's shell has it: no cache folders chosen, HOME at ``home``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BLENDER_USER_RESOURCES", "XDG_CACHE_HOME", "MESA_SHADER_CACHE_DIR")}
    return dict(env, HOME=str(home))


def digest(root) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def test_same_seed_same_bytes_any_worker_count_and_resume(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert make(a, "--workers", "2", env=user_env(tmp_path / "home")).returncode == 0
    assert make(b, "--workers", "1").returncode == 0
    # The dataset folder holds only the dataset; Blender's resources and caches go to the user's cache folder.
    assert [n for n in os.listdir(a) if n.startswith(".")] == [".logs"]   # the workers' own logs
    assert (tmp_path / "home" / ".cache" / "inhabit" / "blender").is_dir()
    da = digest(a)
    assert da == digest(b)
    assert {"manifest.json", "clips/clip_00001/gt.npy", "clips/clip_00001/reference.png"} <= set(da)
    # A killed run leaves complete clips and at most a temp folder: the same command continues.
    shutil.rmtree(a / "clips" / "clip_00001")
    (a / "clips" / ".tmp-clip_00001").mkdir()
    (a / "clips" / ".tmp-clip_00001" / "gt.npy").write_bytes(b"half written")
    before = os.stat(a / "clips" / "clip_00000" / "meta.json").st_mtime_ns
    proc = make(a)
    assert proc.returncode == 0, proc.stderr
    assert digest(a) == da
    assert os.stat(a / "clips" / "clip_00000" / "meta.json").st_mtime_ns == before   # not rendered again
    m = json.loads((a / "manifest.json").read_text())
    assert m["generator_version"] == layout.GENERATOR_VERSION and m["seed"] == 0
    assert sorted(sum(m["splits"].values(), [])) == [0, 1]


def test_bad_arguments_get_one_sentence(tmp_path):
    proc = make(tmp_path / "x", clips=0)
    assert proc.returncode == 2 and "--clips must be" in proc.stderr
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    proc = make(tmp_path / "foreign")
    assert proc.returncode == 2 and "not empty and holds no dataset" in proc.stderr
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"


def test_layout_reader_names_the_problem(tmp_path):
    with pytest.raises(layout.DatasetError, match="is empty"):
        layout.read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(layout.DatasetError, match="not an Inhabit dataset"):
        layout.read_manifest(str(tmp_path))
    m = layout.manifest_for(clips=2, frames=2, size=32, seed=0, samples=1)
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(layout.DatasetError, match="no rendered clips"):
        layout.split_indices(str(tmp_path), m, "test")


def test_splits_are_disjoint_and_cover_every_clip():
    s = layout.split_clips(50, seed=3)
    everything = s["train"] + s["val"] + s["test"]
    assert sorted(everything) == list(range(50)) and len(s["test"]) == 5 and len(s["val"]) == 5
    assert layout.split_clips(50, seed=3) == s != layout.split_clips(50, seed=4)


ASSETS = os.path.join(os.path.dirname(__file__), "assets")
SNAKE_BVH = ("HIERARCHY\nROOT Root\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation "
             "Yrotation\n JOINT Mid\n {\n  OFFSET 0 1 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n  End Site\n"
             "  {\n   OFFSET 0 1 0\n  }\n }\n}\nMOTION\nFrames: 30\nFrame Time: 0.0333333\n"
             + "0 0 0 0 0 0 0 0 0\n" * 30)


def test_bvh_motions_are_recorded_and_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ("--motions", ASSETS, "--motion-share", "1")
    pa, pb = make(a, *args, "--workers", "2"), make(b, *args)
    assert pa.returncode == 0 and pb.returncode == 0, pa.stderr + pb.stderr
    assert digest(a) == digest(b)
    m = json.loads((a / "manifest.json").read_text())
    files = {x["file"]: x for x in m["motions"]}
    assert set(files) == {"boxing_toes_start.bvh", "cmu_01_01_start.bvh"} and m["motion_share"] == 1.0
    for i in range(2):
        meta = json.loads((a / "clips" / layout.clip_name(i) / "meta.json").read_text())
        rec = meta["bvh"]
        assert meta["motion"] == "bvh" and rec["file"] in files and rec["sha256"] == files[rec["file"]]["sha256"]
        first, last = rec["frames"]
        assert last - first == 1 and 0 <= first and last < files[rec["file"]]["frames"]
        assert set(meta["looks"]) == {"shirt", "trousers", "hair"}
    # Other motion files in the same folder: refused, nothing rendered again.
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(os.path.join(ASSETS, "cmu_01_01_start.bvh"), one)
    proc = make(a, "--motions", one, "--motion-share", "1")
    assert proc.returncode == 2 and "motions" in proc.stderr


def test_a_bvh_that_cannot_be_mapped_stops_before_any_clip(tmp_path):
    motions = tmp_path / "motions"
    motions.mkdir()
    shutil.copy(os.path.join(ASSETS, "cmu_01_01_start.bvh"), motions)
    (motions / "snake.bvh").write_text(SNAKE_BVH)
    out = tmp_path / "out"
    proc = make(out, "--motions", motions)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'snake.bvh'" in lines[0] and "--motions" in lines[0], proc.stderr
    assert not os.path.exists(out / "clips") and not os.path.exists(out / "manifest.json")
    (motions / "snake.bvh").write_text("not a bvh")
    proc = make(out, "--motions", motions)
    assert proc.returncode == 2 and "'snake.bvh' has no valid 'Frames:'" in proc.stderr
    proc = make(out, "--motions", tmp_path / "nowhere")
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
