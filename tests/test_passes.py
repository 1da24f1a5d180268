"""Passes from a real headless Blender render of the test scene."""
import numpy as np
import pytest

import bpy  # noqa: E402  (a required test dependency: missing bpy must fail, not skip)

from blender_addon.core import conventions, protocol  # noqa: E402
from blender_addon.core.settings import ShotSettings  # noqa: E402
from blender_addon.scene.export import ShotExporter  # noqa: E402
from blender_addon.shot import scene_shot  # noqa: E402
from blender_addon.scene.passes import read_png_rgb  # noqa: E402
from tests.blender_scene import CAMERA_Y, add_colour_strip, build_scene, colour_proxy, raycast_silhouette  # noqa: E402

SIZE = 64


def _render_state(scene):
    r, c = scene.render, scene.cycles
    return dict(engine=r.engine, post=(r.use_sequencer, r.use_compositing),
                res=(r.resolution_x, r.resolution_y, r.resolution_percentage),
                samples=c.samples, filt=c.filter_width, denoise=c.use_denoising,
                fmt=(r.image_settings.file_format, r.image_settings.color_depth),
                passes=[(vl.use_pass_z, vl.use_pass_object_index, vl.use) for vl in scene.view_layers],
                hide={o.name: o.hide_render for o in scene.objects},
                pass_index={o.name: o.pass_index for o in scene.objects},
                frame=scene.frame_current)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    scene = build_scene(size=SIZE, frames=2)
    scene.render.resolution_x = 100  # the user's own settings, to be restored
    scene.cycles.samples = 7
    # An earlier take on the sequencer must not replace the scene in the passes.
    add_colour_strip(scene, "Earlier take", channel=1, frame_start=1, length=5)
    s = ShotSettings(armature="Rig", reference_path="", frame_start=1, frame_end=2, width=SIZE, height=SIZE,
                     output_dir=str(tmp_path_factory.mktemp("out")), objects_collection="Interactive", samples=2)
    exporter = ShotExporter(scene_shot(scene, s))
    colour_proxy(exporter.body_objects)
    before = _render_state(scene)
    with exporter:
        frames = [exporter.export_frame(i) for i in range(2)]
    after = _render_state(scene)
    return dict(scene=scene, exporter=exporter, frames=frames, before=before, after=after,
                tmp=tmp_path_factory.mktemp("render"))


def test_arrays_follow_the_protocol(shot):
    for arrays in shot["frames"]:
        assert set(arrays) == set(protocol.FRAME_INPUTS)
        protocol.check_frame_inputs(arrays, height=SIZE, width=SIZE, n_objects=1)


def test_user_render_settings_survive(shot):
    assert shot["after"] == shot["before"]


def _is_red(rgb):
    return (rgb[..., 0] > 150) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)


def test_environment_contains_no_character_pixels(shot):
    scene = shot["scene"]
    env = shot["frames"][1]["environment"]
    assert not _is_red(env).any()
    # The same frame with the (red) body shown does have red pixels, where the mask is.
    scene.frame_set(2)
    for o in shot["exporter"].body_objects:
        o.hide_render = False
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.image_settings.file_format = "PNG"
    scene.render.use_sequencer = False  # the fixture's colour strip would replace the scene
    path = str(shot["tmp"] / "full.png")
    try:
        bpy.ops.render.render(write_still=False)
        bpy.data.images["Render Result"].save_render(filepath=path, scene=scene)
    finally:
        for o in shot["exporter"].body_objects:
            o.hide_render = True
        scene.render.resolution_x = 100
        scene.render.use_sequencer = True
    full = read_png_rgb(path)
    red = _is_red(full)
    assert red.sum() > 40
    # The full render is anti-aliased (pixel filter 1.5 px), so red bleeds one pixel past the silhouette.
    mask = shot["frames"][1]["character_mask"] == 255
    grown = mask.copy()
    for axis in (0, 1):
        for shift in (1, -1):
            grown |= np.roll(mask, shift, axis)
    assert grown[red].all()
    # The mask is the full silhouette; the table hides the legs, so only the unoccluded part shows red.
    a = shot["frames"][1]
    visible = mask & (a["character_depth"] < a["scene_depth"])
    assert red[visible].mean() > 0.9
    assert not red[mask & ~visible].any()


@pytest.mark.parametrize("index", [0, 1])
def test_mask_and_depth_match_the_geometry(shot, index):
    scene = shot["scene"]
    scene.frame_set(1 + index)
    truth_mask, truth_depth = raycast_silhouette(scene, shot["exporter"].body_objects, SIZE, SIZE)
    arrays = shot["frames"][index]
    mask = arrays["character_mask"] == 255
    iou = (mask & truth_mask).sum() / (mask | truth_mask).sum()
    assert iou > 0.97, iou
    both = mask & truth_mask
    err = np.abs(arrays["character_depth"][both] - truth_depth[both])
    assert err.max() < 0.01, err.max()
    assert (arrays["character_depth"][~mask] == conventions.NO_SURFACE_DEPTH).all()
    # The body stands at y = 0, so its planar depth is the camera distance minus at most a capsule radius.
    assert abs(np.median(arrays["character_depth"][mask]) - (-CAMERA_Y)) < 0.12


def test_scene_depth_and_object_labels(shot):
    scene = shot["scene"]
    arrays = shot["frames"][0]
    truth_table, table_depth = raycast_silhouette(scene, [bpy.data.objects["Table"]], SIZE, SIZE)
    inner = truth_table & np.roll(truth_table, 1, 0) & np.roll(truth_table, -1, 0) & \
        np.roll(truth_table, 1, 1) & np.roll(truth_table, -1, 1)
    assert inner.sum() > 20
    assert np.abs(arrays["scene_depth"][inner] - table_depth[inner]).max() < 0.01
    truth_box, _ = raycast_silhouette(scene, [bpy.data.objects["Box"]], SIZE, SIZE)
    labels = arrays["object_labels"]
    assert set(np.unique(labels)) == {0, 1}
    iou = ((labels == 1) & truth_box).sum() / ((labels == 1) | truth_box).sum()
    assert iou > 0.8, iou
    assert shot["exporter"].object_names == ["Box"]


@pytest.mark.parametrize("as_collection", [False, True])
def test_a_mesh_body_with_child_meshes_or_a_collection(tmp_path, as_collection):
    from tests.blender_scene import make_box
    scene = build_scene(size=SIZE, frames=1)
    coll = bpy.data.collections.new("Character")
    scene.collection.children.link(coll)
    torso = make_box("Body", (0.4, 0.3, 0.5), (0, 0, 1.2), coll)
    hat = make_box("Hat", (0.3, 0.3, 0.15), (0, 0, 0.45), coll)
    hat.parent = torso  # a child mesh is part of the character too
    s = ShotSettings(armature="Rig", reference_path="", frame_start=1, frame_end=1, width=SIZE, height=SIZE,
                     output_dir=str(tmp_path), body="Character" if as_collection else "Body", samples=1)
    with ShotExporter(scene_shot(scene, s)) as ex:
        assert sorted(o.name for o in ex.body_objects) == ["Body", "Hat"]
        arrays = ex.export_frame(0)
    truth, _ = raycast_silhouette(scene, [torso, hat], SIZE, SIZE)
    mask = arrays["character_mask"] == 255
    assert (mask & truth).sum() / (mask | truth).sum() > 0.97
    assert not bpy.data.collections.get("Inhabit Proxy: Rig")  # no proxy when a body is given
