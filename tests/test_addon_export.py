"""``inhabit export`` on a .blend the test builds, and the sequencer side of results."""
import argparse
import json
import os

import numpy as np

import bpy  # noqa: E402  (a required test dependency: missing bpy must fail, not skip)

from blender_addon.core import png, protocol  # noqa: E402
from tests.blender_scene import add_colour_strip, build_scene  # noqa: E402


def make_blend(tmp_path, frames=2):
    """Save the test scene and a reference image; return their paths."""
    build_scene(size=64, frames=frames)
    blend = str(tmp_path / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    ref = str(tmp_path / "ref.png")
    yy, xx = np.mgrid[0:32, 0:24]
    png.write_png_atomic(ref, np.dstack([xx * 10, yy * 7, np.full_like(xx, 90)]).astype(np.uint8))
    return blend, ref


def _parse(module, argv):
    parser = argparse.ArgumentParser(prog="inhabit")
    sub = parser.add_subparsers(dest="command")
    module.add_parser(sub)
    return parser.parse_args(argv)


def test_export_writes_what_would_be_sent(tmp_path):
    from backend.cli.commands import export
    blend, ref = make_blend(tmp_path)
    out = tmp_path / "export"
    args = _parse(export, ["export", blend, "--armature", "Rig", "--objects", "Interactive", "--reference", ref,
                           "--frames", "1-2", "--resolution", "64x64", "--samples", "1", "--out", str(out)])
    assert export.run(args) == 0
    header = json.loads((out / "job.json").read_text())
    spec = protocol.JobSpec.from_header(header)  # a valid SUBMIT header
    assert (spec.width, spec.height, spec.frames, spec.objects) == (64, 64, 2, ["Box"])
    assert header["scene_frames"] == [1, 2]
    for i in range(2):
        with np.load(out / f"frame_{i:05d}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        assert set(arrays) == set(protocol.FRAME_INPUTS)
        protocol.check_frame_inputs(arrays, height=64, width=64, n_objects=1)
        assert (arrays["character_mask"] == 255).sum() > 50
    with np.load(out / "reference.npz") as z:
        assert z["reference"].shape == (32, 24, 4) and z["reference"][5, 3, 0] == 30


def test_export_bad_input_is_one_sentence(tmp_path, capsys):
    from backend.cli.commands import export
    blend, ref = make_blend(tmp_path)
    args = _parse(export, ["export", blend, "--armature", "Nope", "--reference", ref, "--out", str(tmp_path / "o")])
    assert export.run(args) == 2
    assert "Object 'Nope' does not exist: pick the character's armature." in capsys.readouterr().err


def test_results_become_a_growing_strip(tmp_path):
    from blender_addon.results import ResultSink
    scene = build_scene(size=64, frames=1)
    add_colour_strip(scene, "Colour", channel=3, frame_start=1, length=10)
    sink = ResultSink(scene, take_dir=str(tmp_path / "take_001"), shot_name="Shot", frame_start=5, channel=None)
    assert sink.channel == 4  # first free above the existing strip
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 255
    sink(1, rgba, np.zeros((64, 64), np.uint8))      # early frame: waits for frame 0
    assert sink.strip.strip is None and os.path.isfile(sink.frame_paths[1])
    sink(0, rgba, None)
    sink(2, rgba, None)
    strip = sink.strip.strip
    assert strip.name == "Shot_take_001" and strip.channel == sink.channel
    assert strip.frame_final_start == 5 and strip.frame_final_duration == 3
    assert [e.filename for e in strip.elements] == ["frame_00005.png", "frame_00006.png", "frame_00007.png"]
    assert not any(n.endswith(".part") for n in os.listdir(tmp_path / "take_001"))


def test_render_command_refuses_bad_input_before_any_work(tmp_path, capsys):
    from backend.cli.commands import render
    blend, ref = make_blend(tmp_path)
    cases = [
        (["--armature", "Rig", "--reference", ref, "--frames", "3-1"], "Frame range 3-1 is empty or reversed"),
        (["--armature", "Rig", "--reference", str(tmp_path / "none.png")], "does not exist"),
        (["--armature", "Rig", "--reference", ref, "--resolution", "4096x4096"], "over the server's limit"),
    ]
    for extra, words in cases:
        args = _parse(render, ["render", blend, *extra, "--out", str(tmp_path / "o"), "--server", "tcp://127.0.0.1:9"])
        assert render.run(args) == 2
        assert words in capsys.readouterr().err
    args = _parse(render, ["render", str(tmp_path / "missing.blend"), "--armature", "Rig", "--reference", ref,
                           "--out", str(tmp_path / "o")])
    assert render.run(args) == 2
    assert "does not exist: give the path of a saved .blend file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
