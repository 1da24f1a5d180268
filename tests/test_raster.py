"""The body's mask and depth from its own triangles, against the Cycles passes they replace."""
import logging

import numpy as np
import pytest

import bpy  # noqa: E402  (a required test dependency: missing bpy must fail, not skip)

from blender_addon.core import bmp, conventions, zbuffer  # noqa: E402
from blender_addon.core.settings import ShotSettings  # noqa: E402
from blender_addon.scene.export import ShotExporter  # noqa: E402
from blender_addon.shot import scene_shot  # noqa: E402
from blender_addon.scene.passes import read_png_rgb  # noqa: E402


def _perspective(f: float = 1.0) -> np.ndarray:
    """A square-frustum projection (Blender's convention: camera looks down -Z)."""
    n, far = 0.1, 100.0
    return np.array([[f, 0, 0, 0], [0, f, 0, 0], [0, 0, (far + n) / (n - far), 2 * far * n / (n - far)],
                     [0, 0, -1, 0]])


def test_zbuffer_depth_is_exact_on_a_slanted_plane():
    # A large quad on the plane z = -2 - X/4 (camera space): planar depth at each pixel
    # centre is analytic, and only perspective-correct interpolation gets it right.
    pts = np.array([[-5, -5, -0.75], [5, -5, -3.25], [5, 5, -3.25], [-5, 5, -0.75]], float)
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    w = h = 16
    depth = zbuffer.rasterise_depth(pts, tris, _perspective(), w, h, 0.1)
    assert np.isfinite(depth).all()  # covers the frame, no cracks along the diagonal
    xs = ((np.arange(w) + 0.5) / w) * 2 - 1  # NDC of the pixel centres
    # The ray through NDC x meets the plane at depth d with X = x d, z = -d:  d = 2 / (1 - x/4).
    expected = 2.0 / (1.0 - 0.25 * xs)
    assert np.allclose(depth, expected[None, :], atol=1e-5)


def test_zbuffer_keeps_the_nearest_and_drops_what_crosses_the_near_plane():
    near = np.array([[-0.2, -0.2, -1], [0.2, -0.2, -1], [0, 0.2, -1]], float)
    far = near * [5, 5, 3]
    behind = np.array([[-1, -1, -1], [1, -1, -1], [0, 1, 0.5]], float)
    pts = np.concatenate([far, near, behind])
    depth = zbuffer.rasterise_depth(pts, np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]]), _perspective(), 32, 32, 0.1)
    assert depth[16, 16] == pytest.approx(1.0)
    assert np.isinf(depth[0, 0])  # the triangle reaching behind the camera is dropped
    assert depth[12, 16] == pytest.approx(3.0)  # only the far triangle covers this pixel
    assert 40 < np.isfinite(depth).sum() < 70  # the far triangle's ~57 pixels
    empty = zbuffer.rasterise_depth(np.zeros((0, 3)), np.zeros((0, 3), int), _perspective(), 8, 8, 0.1)
    assert np.isinf(empty).all()


def _compare(exporter_args, frames, *, ortho=False):
    """Export with the rasteriser (and reuse) and with the Cycles character pass
    (every frame rendered, the previous behaviour); return both frame lists."""
    scene, settings = exporter_args
    if ortho:
        scene.camera.data.type = "ORTHO"
        scene.camera.data.ortho_scale = 3.0
    out = {}
    for name, options in (("new", {}), ("old", {"character_pass": "cycles", "reuse": False})):
        with ShotExporter(scene_shot(scene, settings), pass_options=options) as ex:
            out[name] = [ex.export_frame(i) for i in range(frames)]
            st = ex.render_stats
            out[name + "_stats"] = {"renders": st["renders"], "reused": st["reused"]}
    return out


def _assert_same_passes(new, old):
    for a, b in zip(new, old):
        for key in ("environment", "scene_depth", "object_labels", "keypoints"):
            assert np.array_equal(a[key], b[key]), key
        ma, mb = a["character_mask"] == 255, b["character_mask"] == 255
        assert mb.sum() > 30
        iou = (ma & mb).sum() / (ma | mb).sum()
        assert iou >= 0.99, iou
        both = ma & mb
        assert np.abs(a["character_depth"][both] - b["character_depth"][both]).max() <= 1e-3
        assert (a["character_depth"][~ma] == conventions.NO_SURFACE_DEPTH).all()


def _test_scene(tmp_path, frames):
    from tests.blender_scene import build_scene
    scene = build_scene(size=64, frames=frames, samples=1)
    s = ShotSettings(armature="Rig", reference_path="", frame_start=1, frame_end=frames, width=64, height=64,
                     output_dir=str(tmp_path), objects_collection="Interactive", samples=1)
    return scene, s


@pytest.mark.parametrize("ortho", [False, True], ids=["perspective", "orthographic"])
def test_passes_sent_are_what_they_were_for_every_frame(tmp_path, caplog, ortho):
    caplog.set_level(logging.INFO, logger="blender_addon.scene.export")
    out = _compare(_test_scene(tmp_path, 3), 3, ortho=ortho)
    _assert_same_passes(out["new"], out["old"])
    assert out["new_stats"] == {"renders": 1, "reused": 2}
    assert out["old_stats"] == {"renders": 3, "reused": 0}
    # The job's log says how many frames reused a render.
    assert "3 frames exported, 2 reused the previous environment render (1 renders)" in caplog.text


def test_skinned_body_matches_the_cycles_pass(tmp_path):
    # The demo's character: meshes deformed by an Armature modifier, several objects.
    from backend.blender.demo.scene import ARMATURE, BODY_COLLECTION, INTERACTIVE_COLLECTION, build_scene
    scene, _arm = build_scene(frames=3, size=96, samples=1)
    s = ShotSettings(armature=ARMATURE, reference_path="", frame_start=1, frame_end=3, width=96, height=96,
                     output_dir=str(tmp_path), body=BODY_COLLECTION, objects_collection=INTERACTIVE_COLLECTION,
                     samples=1)
    out = _compare((scene, s), 3)
    _assert_same_passes(out["new"], out["old"])


def test_bmp_environment_is_the_png_one(tmp_path):
    from tests.blender_scene import build_scene
    from blender_addon import compat
    scene = build_scene(size=40, frames=1, samples=1)
    bpy.ops.render.render(write_still=False)
    result = bpy.data.images["Render Result"]
    for kind in ("png", "bmp"):
        compat.set_image_format(scene.render.image_settings, kind)
        result.save_render(filepath=str(tmp_path / f"env.{kind}"), scene=scene)
    png = read_png_rgb(str(tmp_path / "env.png"))
    assert png.shape == (40, 40, 3) and png.std() > 1
    assert np.array_equal(bmp.read_bmp_rgb(str(tmp_path / "env.bmp")), png)
