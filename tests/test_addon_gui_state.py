"""What the window showed, checked headless: the add-on's GUI driver (timers never fire in bpy
as a module, so the tests call its tick and poll functions as Blender would) against a real
``inhabit serve`` (echo engine) or a real ZeroMQ socket that never answers.

Each bad input ends in one sentence in the panel state, with every scene setting as the user had it.
"""
import os
import shutil
import time

import numpy as np
import pytest
import zmq

import bpy  # noqa: F401  (a required test dependency: missing bpy must fail, not skip)
from blender_addon import compat
from blender_addon.core import png
from tests import serverproc
from tests.blender_scene import build_scene

SIZE = 48


@pytest.fixture(scope="module")
def server():
    with serverproc.start_server(engines=("tests.engines_for_tests:EchoEngine",)) as srv:
        yield srv


@pytest.fixture()
def silent_address():
    """A real ROUTER socket that takes every message and never answers (a job stays queued)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield f"tcp://127.0.0.1:{port}"
    sock.close(linger=0)


@pytest.fixture()
def registered():
    import blender_addon
    from blender_addon.ui import runner
    blender_addon.register()
    runner.clear_messages()
    runner.state.take_dir = ""
    yield runner
    runner.block_in_background = True
    blender_addon.unregister()


def _scene(tmp_path, address, frames=2):
    scene = build_scene(size=SIZE, frames=frames)
    ref = str(tmp_path / "ref.png")
    png.write_png_atomic(ref, np.full((32, 24, 3), 140, np.uint8))
    p = scene.inhabit
    p.server, p.engine, p.armature = address, "echo", bpy.data.objects["Rig"]
    p.reference_path, p.output_dir, p.samples = ref, str(tmp_path / "gui"), 1
    p.objects_collection = bpy.data.collections["Interactive"]
    return scene


def _user_settings(scene) -> dict:
    """Every scene setting the passes touch, as the user left it."""
    r, c = scene.render, scene.cycles
    out = {k: getattr(r, k) for k in ("engine", "resolution_x", "resolution_y", "resolution_percentage",
                                       "use_border", "film_transparent", "use_sequencer", "use_compositing")}
    out.update({f"cycles.{k}": getattr(c, k) for k in ("samples", "use_denoising", "denoiser", "filter_width",
                                                        "denoising_prefilter")})
    out["image_format"] = compat.image_format_state(r.image_settings)
    out["layers"] = [(vl.name, vl.use, vl.use_pass_z, vl.use_pass_object_index) for vl in scene.view_layers]
    out["objects"] = sorted((o.name, o.pass_index, o.hide_render) for o in scene.objects if not o.get("inhabit_proxy"))
    out["frame"] = scene.frame_current
    return out


def _run_to_end(runner, timeout=30.0):
    deadline = time.monotonic() + timeout
    while runner._tick() is not None:
        assert time.monotonic() < deadline, runner.state.session.job.progress.text()
        time.sleep(0.01)


def _user_choices(scene):
    """What a user of the default panel has: Denoise on, samples 4, the post-processing on."""
    scene.render.use_sequencer = scene.render.use_compositing = True
    scene.cycles.samples, scene.cycles.use_denoising = 4, False
    for o in scene.objects:
        o.pass_index = 7


def test_without_openimagedenoise_the_shot_runs_with_a_note_and_settings_come_back(server, tmp_path, registered,
                                                                                    monkeypatch):
    runner = registered
    scene = _scene(tmp_path, server.address)
    _user_choices(scene)
    before = _user_settings(scene)
    # Debian's Blender: the running Cycles offers no OpenImageDenoise.
    monkeypatch.setattr(compat, "cycles_denoisers", lambda scene: [])
    assert bpy.ops.inhabit.animate() == {"FINISHED"}
    session = runner.state.session
    assert session.exporter.renderer.notes and scene.cycles.use_denoising is False
    assert any("no OpenImageDenoise" in n for n in runner.state.notes)
    _run_to_end(runner)
    assert runner.state.last_error == "" and runner.state.last_result.startswith("2 frames")
    assert _user_settings(scene) == before


def test_a_failure_while_changing_settings_puts_every_one_back(server, tmp_path, registered, monkeypatch):
    runner = registered
    from blender_addon.scene import passes
    scene = _scene(tmp_path, server.address)
    _user_choices(scene)
    before = _user_settings(scene)

    def broken(self, cycles):  # as `denoiser = "OPENIMAGEDENOISE"` failed on Debian's build, mid-way
        cycles.use_denoising = True
        raise TypeError('bpy_struct: item.attr = val: enum "OPENIMAGEDENOISE" not found in ()')
    monkeypatch.setattr(passes.PassRenderer, "_set_denoise", broken)
    with pytest.raises(RuntimeError, match="could not start"):  # the operator's ERROR report, headless
        bpy.ops.inhabit.animate()
    assert runner.state.session is None
    assert "could not start" in runner.state.last_error and "OPENIMAGEDENOISE" in runner.state.last_error
    assert _user_settings(scene) == before
    assert not any((tmp_path / "gui").rglob("*.png"))


def test_result_shows_in_the_sequencer_editor_and_the_take_folder_removal_is_told(server, tmp_path, registered):
    runner = registered
    scene = _scene(tmp_path, server.address)
    ws = bpy.context.workspace
    if hasattr(ws, "sequencer_scene"):
        ws.sequencer_scene = None  # a new 5.x file: the Sequencer editor shows nothing
    assert bpy.ops.inhabit.animate() == {"FINISHED"}
    _run_to_end(runner)
    assert compat.sequencer_scene(bpy.context) == scene
    assert f"scene {scene.name!r}" in runner.state.last_result
    take = runner.state.take_dir
    assert os.path.isdir(take) and not runner.take_removed()
    shutil.rmtree(take)
    assert runner.take_removed()


def test_when_the_sequencer_shows_another_scene_the_panel_says_where_the_strip_went(server, tmp_path, registered):
    runner = registered
    scene = _scene(tmp_path, server.address)
    ws = bpy.context.workspace
    if not hasattr(ws, "sequencer_scene"):
        pytest.skip("Blender 4.x: the Sequencer shows the window's scene")
    edit = bpy.data.scenes.new("Edit")
    ws.sequencer_scene = edit
    assert bpy.ops.inhabit.animate() == {"FINISHED"}
    assert any("'Edit'" in n and repr(scene.name) in n for n in runner.state.notes), runner.state.notes
    _run_to_end(runner)
    assert ws.sequencer_scene == edit  # the user's choice stays


def test_cancel_while_queued_ends_within_a_second_with_settings_back(server, silent_address, tmp_path, registered):
    runner = registered
    from blender_addon.ui.operators import start_shot
    from blender_addon.ui.properties import settings_from_scene
    from blender_addon.session import fetch_server_info
    from blender_addon.shot import resolve_shot
    scene = _scene(tmp_path, silent_address)
    _user_choices(scene)
    before = _user_settings(scene)
    info = fetch_server_info(server.address)
    start_shot(resolve_shot(scene, settings_from_scene(scene)), info, [])  # to a server that never answers
    assert runner.running() and runner.state.session.job.state == "queued"
    runner._tick()
    t0 = time.monotonic()
    assert bpy.ops.inhabit.cancel() == {"FINISHED"}
    assert time.monotonic() - t0 < 1.0
    assert runner.state.session is None and runner._tick() is None
    assert runner.state.last_result == "Cancelled; no frame came back, so no take was kept."
    assert runner.state.take_dir == "" and not runner.take_removed()
    assert _user_settings(scene) == before


def test_test_connection_and_animate_on_a_dead_address_never_block(tmp_path, registered):
    runner = registered
    runner.block_in_background = False  # behave as in a window: poll, as the timer would
    dead = f"tcp://127.0.0.1:{serverproc.free_port()}"
    scene = _scene(tmp_path, dead)
    for op in (bpy.ops.inhabit.test_connection, bpy.ops.inhabit.animate):
        runner.clear_messages()
        t0 = time.monotonic()
        assert op() == {"FINISHED"}
        assert time.monotonic() - t0 < 0.5  # the operator returned; the network is on a thread
        assert runner.state.connecting is not None and not bpy.ops.inhabit.animate.poll()
        deadline = time.monotonic() + 15
        while runner._poll_connection() is not None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert runner.state.last_error.startswith(f"Cannot reach the Inhabit server at {dead}")
        assert runner.state.session is None and runner.state.server_status == "unreachable"
    assert scene.inhabit.server == dead


def test_loading_another_file_mid_job_leaves_a_sentence_and_the_frames(server, tmp_path, registered):
    runner = registered
    scene = _scene(tmp_path, server.address, frames=3)
    delay = scene.inhabit.params.add()
    delay.name, delay.kind, delay.float_value = "delay", "float", 0.5  # the echo engine's, per frame
    assert bpy.ops.inhabit.animate() == {"FINISHED"}, runner.state.last_error
    assert runner.state.session is not None, (runner.state.last_error, runner.state.last_result)
    deadline = time.monotonic() + 20
    while runner.state.session.job.progress.received < 1:
        runner._tick()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    take = runner.state.session.sink.take_dir
    bpy.ops.wm.read_factory_settings(use_empty=True)  # fires load_pre and load_post
    assert runner.state.session is None
    assert runner.state.last_error.startswith("Another file was loaded, so the Inhabit job stopped; ")
    assert take in runner.state.last_error and os.listdir(take)
    del scene


def test_panel_redraws_only_when_what_it_shows_changed(registered, monkeypatch):
    runner = registered
    runner.redraw_if_changed()
    assert runner.redraw_if_changed() is False
    runner.state.last_error = "Reference image '/x.png' cannot be read (no such file): save it as PNG or JPEG."
    assert runner.redraw_if_changed() is True and runner.redraw_if_changed() is False
    assert runner.redraw_if_changed(strips=True) is True
    # The progress line alone (steps, ETA) waits PROGRESS_REDRAW_S: each sidebar redraw also redraws
    # the 3D viewport under it (region overlap).
    monkeypatch.setattr(runner, "_progress_text", lambda: "generating · step 3/20 · 0:12 left")
    assert runner.redraw_if_changed() is False
    runner.state.shown_at -= runner.PROGRESS_REDRAW_S
    assert runner.redraw_if_changed() is True and runner.redraw_if_changed() is False


def test_path_fields_take_blend_relative_paths(tmp_path, registered):
    from blender_addon.core.settings import SetupError
    from blender_addon.ui.properties import settings_from_scene
    props = bpy.types.Scene.bl_rna.properties["inhabit"].fixed_type.bl_rna.properties
    for name in ("reference_path", "reference_keypoints_path", "output_dir"):
        if hasattr(props[name], "is_path_supports_blend_relative"):
            assert props[name].is_path_supports_blend_relative, name
    scene = _scene(tmp_path, "tcp://127.0.0.1:5555")
    scene.inhabit.reference_path = "//ref.png"
    if not bpy.data.filepath:
        with pytest.raises(SetupError, match="not saved yet"):
            settings_from_scene(scene)
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert settings_from_scene(bpy.context.scene).reference_path == str(tmp_path / "ref.png")


def test_full_sentences_wrap_on_words_without_losing_any():
    from blender_addon.ui.notice import wrap
    text = ("No reference image: pick an image of the character (PNG or JPEG) in the Character panel's "
            "Reference field.")
    lines = wrap(text, 30)
    assert " ".join(lines) == text and all(len(ln) <= 30 for ln in lines)


def test_saved_files_open_on_a_sequencer_that_shows_the_result():
    scene = build_scene(size=SIZE, frames=1)
    compat.show_in_every_sequencer(scene)
    for ws in bpy.data.workspaces:
        assert getattr(ws, "sequencer_scene", scene) == scene, ws.name


def test_the_reference_is_read_once_while_the_file_stays_the_same(tmp_path, monkeypatch):
    from blender_addon.scene import passes
    loads = []
    load = passes._load_image_rgba
    monkeypatch.setattr(passes, "_load_image_rgba", lambda p: loads.append(p) or load(p))
    path = str(tmp_path / "ref.png")
    png.write_png_atomic(path, np.full((8, 6, 3), 100, np.uint8))
    first = passes.read_image_rgba(path)
    again = passes.read_image_rgba(path)
    assert np.array_equal(first, again) and len(loads) == 1  # no datablock added and removed again
    png.write_png_atomic(path, np.full((8, 7, 3), 50, np.uint8))  # another picture, another size
    assert passes.read_image_rgba(path).shape == (8, 7, 4) and len(loads) == 2


def test_animate_exports_the_first_batch_in_the_clicks_own_step(server, tmp_path, registered, monkeypatch):
    """In a window each step that waits for the next timer call costs a whole-window redraw: a server that
    answers at once gets INFO, SUBMIT and the first batch of frames inside Animate itself, and the batch is
    bounded by its time budget and the bytes queued, not by a count of frames."""
    runner = registered
    runner.block_in_background = False  # behave as in a window
    monkeypatch.setattr(runner, "MIN_EXPORT_S", 30.0)  # a budget no machine's load can exhaust
    scene = _scene(tmp_path, server.address, frames=6)
    before = _user_settings(scene)
    runner.state.server_status = "unreachable"  # an earlier attempt's: Animate's own answer replaces it
    assert bpy.ops.inhabit.animate() == {"FINISHED"}, runner.state.last_error
    assert runner.state.connecting is None and runner.state.session is not None
    assert runner.state.server_status.startswith("connected: ")
    assert runner.state.session.job.progress.exported == 6  # more than the old 4-frame window let through
    _run_to_end(runner)
    assert runner.state.last_result.startswith("6 frames") and _user_settings(scene) == before


@pytest.mark.parametrize("redraw_s", [0.002, 0.01, 0.05, 0.15, 0.3, 0.4, 0.8, 2.0])
def test_export_batches_keep_the_window_drawing(redraw_s):
    """A batch plus the redraw after it stays under STANDSTILL_S while the redraw leaves room; a fast window
    is not held for more than a few redraws' worth; a slow one still exports a quarter of its redraw."""
    from blender_addon.ui import runner
    budget = runner.export_budget(redraw_s)
    assert budget >= runner.MIN_EXPORT_S
    assert budget <= max(runner.MIN_EXPORT_S, runner.EXPORT_PER_REDRAW * redraw_s) + 1e-9
    if redraw_s <= runner.STANDSTILL_S * 0.8:
        assert budget + redraw_s <= runner.STANDSTILL_S + 1e-9 or budget == runner.MIN_EXPORT_S
    else:
        assert budget >= redraw_s / 4 - 1e-9
