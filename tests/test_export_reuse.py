"""The environment render is reused exactly when nothing it depends on changed.

Real headless Cycles on the test scene (tiny sizes, one sample). Each change
case animates one thing so that it differs only from frame 3 on: the renders
must happen on frames 1 (the first) and 3, and nowhere else.
"""
import numpy as np
import pytest

import bpy  # noqa: E402  (a required test dependency: missing bpy must fail, not skip)

from blender_addon.scene.passes import PassRenderer  # noqa: E402
from blender_addon.scene.proxy import ensure_proxy_body  # noqa: E402
from tests.blender_scene import build_scene  # noqa: E402

SIZE = 32
FRAMES = (1, 2, 3, 4)


def _renderer(scene, **kw):
    body = ensure_proxy_body(scene, bpy.data.objects["Rig"])
    return PassRenderer(scene, body_objects=body, labelled_objects=[bpy.data.objects["Box"]], width=SIZE,
                        height=SIZE, samples=1, workdir=bpy.app.tempdir or "/tmp", **kw)


def _export(scene, **kw):
    """(arrays per frame, frames that rendered the environment)."""
    r = _renderer(scene, **kw)
    out, rendered = [], []
    try:
        for f in FRAMES:
            before = r.renders
            out.append(r.render_frame(f))
            if r.renders > before:
                rendered.append(f)
    finally:
        r.close()
    return out, rendered, r


def _step(owner, path, before, after, index=-1):
    """Key ``path`` to ``before`` on frames 1-2 and ``after`` on frames 3-4 (constant keys)."""
    for f, value in ((1, before), (2, before), (3, after), (4, after)):
        if index >= 0:
            getattr(owner, path)[index] = value
        else:
            setattr(owner, path, value)
        owner.keyframe_insert(path, frame=f, index=index)
    _constant(owner.id_data.animation_data)


def _constant(anim):
    """Constant interpolation, so frames 1-2 and 3-4 hold exactly one value each."""
    action = anim.action
    fcurves = getattr(action, "fcurves", None)
    if fcurves is None:  # Blender 5.0: slotted actions keep curves in channelbags
        fcurves = [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                   for fc in bag.fcurves]
    for fc in fcurves:
        for kp in fc.keyframe_points:
            kp.interpolation = "CONSTANT"


def test_locked_off_shot_renders_once_and_reused_frames_are_bit_identical():
    scene = build_scene(size=SIZE, frames=4, samples=1)
    reused, rendered, r = _export(scene)
    assert rendered == [1] and (r.renders, r.reused) == (1, 3)
    fresh, rendered_all, _ = _export(scene, reuse=False)
    assert rendered_all == list(FRAMES)
    for a, b in zip(reused, fresh):
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    # The character moved, so its passes are per frame although the environment is reused.
    assert not np.array_equal(reused[0]["character_mask"], reused[3]["character_mask"])


def _prop_moves(scene):
    _step(bpy.data.objects["Box"], "location", 0.0, 0.4, index=2)


def _light_animated(scene):
    _step(bpy.data.objects["Sun"].data, "energy", 1.0, 3.0)


def _camera_moves(scene):
    _step(scene.camera, "location", scene.camera.location.x, 0.2, index=0)


def _lens_changes(scene):
    _step(scene.camera.data, "lens", 50.0, 45.0)


def _seed_animated(scene):
    scene.cycles.seed = 0
    for f, seed in ((1, 0), (2, 0), (3, 7), (4, 7)):
        scene.cycles.seed = seed
        scene.keyframe_insert("cycles.seed", frame=f)
    _constant(scene.animation_data)


def _prop_hidden(scene):
    _step(bpy.data.objects["Table"], "hide_render", False, True)


def _material_changes(scene):
    tree = bpy.data.materials["TableMat"].node_tree
    emit = next(n for n in tree.nodes if n.type == "EMISSION")
    _step(emit.inputs["Strength"], "default_value", 1.0, 2.0)


def _shape_key(scene):
    table = bpy.data.objects["Table"]
    table.shape_key_add(name="Basis")
    key = table.shape_key_add(name="Taller")
    for v in key.data:
        v.co.z *= 1.3
    _step(key, "value", 0.0, 1.0)


def _modifier(scene):
    mod = bpy.data.objects["Floor"].modifiers.new("Move", "DISPLACE")
    mod.direction = "Z"
    _step(mod, "strength", 0.0, 0.2)


def _world(scene):
    _step(scene.world, "color", 0.05, 0.3, index=0)


@pytest.mark.parametrize("change", [_prop_moves, _light_animated, _camera_moves, _lens_changes, _seed_animated,
                                    _prop_hidden, _material_changes, _shape_key, _modifier, _world],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_change_re_renders_on_exactly_its_frames(change):
    scene = build_scene(size=SIZE, frames=4, samples=1)
    change(scene)
    _, rendered, _ = _export(scene)
    assert rendered == [1, 3]


def test_settings_that_change_every_frame_render_every_frame():
    scene = build_scene(size=SIZE, frames=4, samples=1)
    scene.cycles.use_animated_seed = True
    assert _export(scene)[1] == list(FRAMES)
    scene = build_scene(size=SIZE, frames=4, samples=1)
    scene.render.use_motion_blur = True
    assert _export(scene)[1] == list(FRAMES)
    # Disabled in the viewport but rendered: the view layer's depsgraph does not
    # evaluate it, so its animation would go unseen -- when in doubt, render.
    scene = build_scene(size=SIZE, frames=4, samples=1)
    bpy.data.objects["Table"].hide_viewport = True
    assert _export(scene)[1] == list(FRAMES)


def test_an_edit_between_frames_is_seen():
    scene = build_scene(size=SIZE, frames=4, samples=1)
    r = _renderer(scene)
    try:
        r.render_frame(1)
        r.render_frame(2)
        assert r.renders == 1
        bpy.data.objects["Table"].location.x += 0.3  # the user moves a prop during the job
        bpy.context.view_layer.update()
        r.render_frame(3)
        assert r.renders == 2
        r.render_frame(4)
        assert r.renders == 2
    finally:
        r.close()


def test_motion_blur_switched_on_mid_shot_renders_from_then_on():
    scene = build_scene(size=SIZE, frames=4, samples=1)
    r = _renderer(scene)
    try:
        counts = []
        for f in FRAMES:
            if f == 3:
                scene.render.use_motion_blur = True
            r.render_frame(f)
            counts.append(r.renders)
    finally:
        r.close()
    assert counts == [1, 1, 2, 3]
