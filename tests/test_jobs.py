"""Whole jobs: the add-on's job machine against a real ``inhabit serve``
subprocess (echo test engine), driven headless by ``run_shot``; cancel,
server death, and every bad input checked before long work."""
import os
import signal
import time

import cv2
import numpy as np
import pytest

import bpy  # noqa: E402  (a required test dependency: missing bpy must fail, not skip)
from tests import serverproc  # noqa: E402

from blender_addon import compat  # noqa: E402
from blender_addon.core import png  # noqa: E402
from blender_addon.core.settings import SetupError, ShotSettings  # noqa: E402
from backend.blender.headless import ShotFailed, run_shot  # noqa: E402
from tests.blender_scene import build_scene  # noqa: E402

SIZE = 64
FAST = {"timeout": 3.0, "heartbeat_interval": 0.25, "heartbeat_timeout": 2.0}


@pytest.fixture(scope="module")
def server():
    with serverproc.start_server(engines=("tests.engines_for_tests:EchoEngine",)) as srv:
        yield srv


@pytest.fixture()
def reference(tmp_path):
    path = str(tmp_path / "ref.png")
    png.write_png_atomic(path, np.full((32, 24, 3), 140, np.uint8))
    return path


def _settings(tmp_path, reference, server_address, **kw):
    base = dict(armature="Rig", reference_path=reference, frame_start=1, frame_end=3, width=SIZE, height=SIZE,
                output_dir=str(tmp_path / "out"), objects_collection="Interactive", engine="echo",
                server=server_address, samples=1)
    base.update(kw)
    return ShotSettings(**base)


def test_job_ends_with_a_strip_and_pngs(server, tmp_path, reference):
    scene = build_scene(size=SIZE, frames=3)
    stages = []
    result = run_shot(scene, _settings(tmp_path, reference, server.address, frame_start=2, frame_end=3),
                      progress=lambda p: stages.append(p.stage), client_options=FAST)
    assert result.state == "done" and result.frames == 2
    assert [os.path.basename(p) for p in result.frame_paths] == ["frame_00002.png", "frame_00003.png"]
    for path in result.frame_paths:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert img.shape == (SIZE, SIZE, 4)
        matte = cv2.imread(os.path.join(result.take_dir, "matte", os.path.basename(path)), cv2.IMREAD_UNCHANGED)
        assert (matte > 0).sum() > 50  # echo: matte = the character mask we sent
    strip = compat.strips(scene.sequence_editor)[result.strip_name]
    assert strip.channel == result.channel == 1
    assert strip.frame_final_start == 2 and strip.frame_final_duration == 2
    assert stages[-1] == "done"
    # A re-run is a new take, never an overwrite.
    again = run_shot(scene, _settings(tmp_path, reference, server.address, frame_end=1, channel=5),
                     client_options=FAST)
    assert again.take_dir != result.take_dir and again.channel == 5
    assert os.path.isfile(result.frame_paths[0])


def test_cancel_mid_job_keeps_received_frames(server, tmp_path, reference):
    scene = build_scene(size=SIZE, frames=4)
    seen = {}

    def should_cancel():
        return seen.get("received", 0) >= 1

    def progress(p):
        seen["received"] = p.received

    t0 = time.monotonic()
    result = run_shot(scene, _settings(tmp_path, reference, server.address, frame_end=4,
                                       params={"delay": 0.4}), progress=progress,
                      should_cancel=should_cancel, client_options=FAST)
    assert result.state == "cancelled"
    assert 1 <= result.frames < 4 and all(os.path.isfile(p) for p in result.frame_paths)
    assert time.monotonic() - t0 < 8
    # The server is still there for the next job.
    assert run_shot(scene, _settings(tmp_path, reference, server.address, frame_end=1),
                    client_options=FAST).state == "done"


def test_server_killed_mid_job_fails_clearly(tmp_path, reference):
    scene = build_scene(size=SIZE, frames=4)
    with serverproc.start_server(engines=("tests.engines_for_tests:EchoEngine",)) as srv:
        state = {}

        def progress(p):
            if p.received >= 1 and "killed" not in state:
                srv.proc.send_signal(signal.SIGKILL)
                state["killed"] = True

        with pytest.raises(ShotFailed) as err:
            run_shot(scene, _settings(tmp_path, reference, srv.address, frame_end=4, params={"delay": 0.5}),
                     progress=progress, client_options=FAST)
    msg = str(err.value)
    assert "Lost the server" in msg and "frames received are kept" in msg
    kept = err.value.result
    assert 1 <= kept.frames < 4 and all(os.path.isfile(p) for p in kept.frame_paths)


def test_engine_error_fails_the_job_with_the_servers_words(server, tmp_path, reference):
    scene = build_scene(size=SIZE, frames=3)
    with pytest.raises(ShotFailed, match="refused the job|failed") as err:
        run_shot(scene, _settings(tmp_path, reference, server.address, params={"fail_at": 1}), client_options=FAST)
    assert err.value.result.frames <= 1
    with pytest.raises(ShotFailed, match="fail at frame 0") as err:
        run_shot(scene, _settings(tmp_path, reference, server.address, params={"fail_at": 0}), client_options=FAST)
    assert err.value.result.frames == 0
    assert not os.path.exists(err.value.result.take_dir)  # no empty take left behind


def _garbage_png(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return str(path)


@pytest.mark.parametrize("case, words", [
    ("no_armature", "No armature chosen"),
    ("not_an_armature", "is a mesh, not an armature"),
    ("unmapped", "do not make a body"),
    ("no_camera", "has no active camera"),
    ("missing_reference", "does not exist"),
    ("unreadable_reference", "cannot be read"),
    ("reversed_range", "empty or reversed"),
    ("too_large", "over the server's limit"),
    ("not_writable", "not writable"),
    ("unreachable", "Cannot reach the Inhabit server"),
    ("unknown_engine", "has no engine 'nope'"),
    ("bad_param", "params.delay"),
])
def test_bad_input_is_refused_before_long_work(server, tmp_path, reference, case, words):
    scene = build_scene(size=SIZE, frames=2)
    kw = {}
    if case == "no_armature":
        kw["armature"] = ""
    elif case == "not_an_armature":
        kw["armature"] = "Table"
    elif case == "unmapped":  # meaningless names still map by structure; three bones do not
        rig = bpy.data.objects["Rig"]
        bpy.context.view_layer.objects.active = rig
        bpy.ops.object.mode_set(mode="EDIT")
        for eb in list(rig.data.edit_bones)[3:]:
            rig.data.edit_bones.remove(eb)
        bpy.ops.object.mode_set(mode="OBJECT")
    elif case == "no_camera":
        scene.camera = None
    elif case == "missing_reference":
        kw["reference_path"] = str(tmp_path / "nope.png")
    elif case == "unreadable_reference":
        kw["reference_path"] = _garbage_png(tmp_path)
    elif case == "reversed_range":
        kw.update(frame_start=5, frame_end=2)
    elif case == "too_large":
        kw.update(width=4096, height=4096)
    elif case == "not_writable":
        (tmp_path / "file").write_text("x")
        kw["output_dir"] = str(tmp_path / "file" / "out")
    elif case == "unreachable":
        kw["server"] = f"tcp://127.0.0.1:{serverproc.free_port()}"
    elif case == "unknown_engine":
        kw["engine"] = "nope"
    elif case == "bad_param":
        kw["params"] = {"delay": "slow"}
    t0 = time.monotonic()
    with pytest.raises(SetupError, match=words) as err:
        run_shot(scene, _settings(tmp_path, reference, server.address, **kw),
                 client_options={"timeout": 1.0})
    assert time.monotonic() - t0 < 5
    assert err.value.message.count(".") >= 1 and ":" in err.value.message  # problem: fix
    assert not os.path.exists(tmp_path / "out" / "Shot")  # no take was started


def test_render_command_saves_the_strip(server, tmp_path, reference):
    import argparse
    from backend.cli.commands import render
    build_scene(size=SIZE, frames=2)
    blend = str(tmp_path / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    saved = str(tmp_path / "with_strip.blend")
    parser = argparse.ArgumentParser()
    render.add_parser(parser.add_subparsers())
    args = parser.parse_args(["render", blend, "--armature", "Rig", "--reference", reference, "--engine", "echo",
                              "--server", server.address, "--resolution", f"{SIZE}x{SIZE}", "--samples", "1",
                              "--out", str(tmp_path / "out"), "--save-blend", saved])
    assert render.run(args) == 0
    bpy.ops.wm.open_mainfile(filepath=saved)
    strips = list(compat.strips(bpy.context.scene.sequence_editor))
    assert len(strips) == 1 and strips[0].frame_final_duration == 2


def test_render_command_on_the_public_character_needs_no_armature_body_or_map(server, tmp_path, reference):
    import argparse
    import math
    from backend.cli.commands import render
    from backend.blender.imports import import_character
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    import_character(os.path.join(os.path.dirname(__file__), "assets", "BCN_Epileptic.glb"), scene, fps=24)
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0, -4.0, -0.2), (math.pi / 2, 0, 0)
    scene.camera = cam
    scene.frame_start, scene.frame_end = 1, 2
    blend = str(tmp_path / "bcn.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    parser = argparse.ArgumentParser()
    render.add_parser(parser.add_subparsers())
    args = parser.parse_args(["render", blend, "--reference", reference, "--engine", "echo", "--server",
                              server.address, "--resolution", f"{SIZE}x{SIZE}", "--samples", "1",
                              "--out", str(tmp_path / "out")])
    assert render.run(args) == 0
    take = next((tmp_path / "out").glob("*/take_001"))
    assert len(list(take.glob("frame_*.png"))) == 2


@pytest.fixture()
def registered():
    import blender_addon
    blender_addon.register()
    yield
    blender_addon.unregister()


def _gui_scene(tmp_path, reference, address, frames):
    scene = build_scene(size=SIZE, frames=frames)
    p = scene.inhabit
    p.server, p.engine, p.armature = address, "echo", bpy.data.objects["Rig"]
    p.reference_path, p.output_dir, p.samples = reference, str(tmp_path / "gui"), 1
    p.objects_collection = bpy.data.collections["Interactive"]
    return scene


def test_gui_path_timer_tick_and_panel_state(server, tmp_path, reference, registered):
    from blender_addon.ui import runner
    scene = _gui_scene(tmp_path, reference, server.address, frames=2)
    bpy.ops.inhabit.test_connection()
    assert runner.state.server_status.startswith("connected")
    assert [prm.name for prm in scene.inhabit.params] == ["delay", "fail_at"]
    assert bpy.ops.inhabit.animate() == {"FINISHED"}
    assert runner.running() and not bpy.ops.inhabit.animate.poll()
    # Timers never fire in bpy-as-a-module: call the GUI's own tick as Blender would.
    deadline = time.monotonic() + 20
    while runner._tick() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert runner.state.session is None and runner.state.last_error == ""
    assert runner.state.last_result.startswith("2 frames")
    strip = list(compat.strips(scene.sequence_editor))[0]
    assert strip.frame_final_duration == 2


def test_loading_a_file_cancels_the_running_job(server, tmp_path, reference, registered):
    from blender_addon.ui import runner
    _gui_scene(tmp_path, reference, server.address, frames=3)
    scene = bpy.context.scene
    scene.inhabit.params.clear()
    assert bpy.ops.inhabit.animate() == {"FINISHED"}
    job = runner.state.session.job
    runner._tick()
    bpy.ops.wm.read_factory_settings(use_empty=True)  # fires load_pre
    assert runner.state.session is None
    assert job.state == "cancelled"
