"""bpy-free core of the add-on: keypoint mapping, settings checks, takes,
PNG/EXR I/O and the job state machine's transition rules."""
import os

import cv2
import numpy as np
import pytest

from blender_addon.core import exr, jobs, keypoint_map, png, protocol, rig_map, takes
from blender_addon.core.settings import (SetupError, ShotSettings, validate_against_server,
                                         validate_shot)

def test_package_imports_without_bpy():
    import subprocess
    import sys
    code = ("import sys, blender_addon, blender_addon.core.jobs, blender_addon.core.settings, "
            "blender_addon.core.keypoint_map, blender_addon.core.rig_map, blender_addon.core.rig_structure, "
            "blender_addon.core.rig_hands, blender_addon.core.rig_face, blender_addon.core.exr; "
            "assert 'bpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))


def _names(names):
    """Bones-only rig from names alone: a chain, no geometry to speak of."""
    from blender_addon.core.rig_map import Bone
    return [Bone(n, None, (0.0, 0.0, 0.1 * i), (0.0, 0.0, 0.1 * i + 0.05)) for i, n in enumerate(names)]


def test_user_mapping_overrides_and_errors():
    from tests import rig_builder
    bones = rig_builder.mixamo("") + _names(["Jaw"])
    m = rig_map.map_rig(bones, '{"nose": ["Jaw", "tail"], "left_wrist": "LeftForeArm"}')
    assert (m.joints["nose"].bone, m.joints["nose"].how) == ("Jaw", "user")
    assert m.joints["left_wrist"].bone == "LeftForeArm"
    with pytest.raises(keypoint_map.MappingError, match="not valid JSON"):
        rig_map.map_rig(bones, "{nose: Jaw")
    with pytest.raises(keypoint_map.MappingError, match="unknown keypoint 'snout'"):
        rig_map.map_rig(bones, {"snout": "Jaw"})
    with pytest.raises(keypoint_map.MappingError, match="does not have"):
        rig_map.map_rig(bones, {"nose": "Beak"})
    with pytest.raises(keypoint_map.MappingError, match="\\['Jaw', 'middle'\\]|head'\\|'tail"):
        rig_map.map_rig(bones, {"nose": ["Jaw", "middle"]})


def test_armature_without_mapped_bones_is_refused():
    with pytest.raises(keypoint_map.MappingError, match="no bones Inhabit recognises.*keypoint mapping"):
        rig_map.map_rig(_names(["Bone", "Bone.001", "Bone.002"]), armature_name="Armature")


def _settings(tmp_path, **kw):
    ref = tmp_path / "ref.png"
    if not ref.exists():
        cv2.imwrite(str(ref), np.full((16, 16, 3), 128, np.uint8))
    base = dict(armature="Rig", reference_path=str(ref), frame_start=1, frame_end=3, width=64, height=64,
                output_dir=str(tmp_path / "out"))
    base.update(kw)
    return ShotSettings(**base)


@pytest.mark.parametrize("change, field, words", [
    (dict(armature=""), "armature", "No armature chosen"),
    (dict(frame_start=5, frame_end=2), "frame_end", "empty or reversed"),
    (dict(width=4096), "resolution", "over the server's limit"),
    (dict(width=60), "resolution", "multiple of 8"),
    (dict(reference_path=""), "reference", "No reference image"),
    (dict(reference_path="/nonexistent/ref.png"), "reference", "does not exist"),
])
def test_bad_settings_name_problem_and_fix(tmp_path, change, field, words):
    with pytest.raises(SetupError) as err:
        validate_shot(_settings(tmp_path, **change))
    assert err.value.field == field and words in err.value.message and ":" in err.value.message


def test_unreadable_reference_and_unwritable_output(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(SetupError, match="not a PNG"):
        validate_shot(_settings(tmp_path, reference_path=str(bad)))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(SetupError, match="not writable.*is a file"):
        validate_shot(_settings(tmp_path, output_dir=str(a_file / "shots")))
    with pytest.raises(SetupError, match="not writable"):
        validate_shot(_settings(tmp_path, output_dir="/proc/inhabit_out"))


def test_validate_against_server_info(tmp_path):
    info = {"engines": [{"name": "echo", "params": [
        protocol.ParamSpec("delay", "float", 0.0, 0.0, 5.0).to_json(),
        protocol.ParamSpec("seed", "int", 0, 0, 2**63 - 1).to_json()]}],
        "limits": dict(protocol.DEFAULT_LIMITS, max_width=32)}
    with pytest.raises(SetupError, match="no engine 'preview'.*echo"):
        validate_against_server(_settings(tmp_path), info)
    with pytest.raises(SetupError, match="limit of 32x"):
        validate_against_server(_settings(tmp_path, engine="echo"), info)
    ok = _settings(tmp_path, engine="echo", width=32, height=32, seed=7, params={"delay": 1})
    assert validate_against_server(ok, info) == {"delay": 1.0, "seed": 7}
    with pytest.raises(SetupError, match="params.delay"):
        validate_against_server(_settings(tmp_path, engine="echo", width=32, height=32, params={"delay": 9}), info)


def test_takes_never_overwrite(tmp_path):
    a = takes.next_take_dir(str(tmp_path), "My shot/1")
    b = takes.next_take_dir(str(tmp_path), "My shot/1")
    assert a != b and os.path.basename(a) == "take_001" and os.path.basename(b) == "take_002"
    assert os.path.dirname(a).endswith("My_shot_1")
    assert takes.strip_name("My shot/1", b) == "My_shot_1_take_002"


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_png_writer_round_trips_through_cv2(tmp_path, channels):
    rng = np.random.default_rng(0)
    shape = (13, 17) if channels is None else (13, 17, channels)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    path = png.write_png_atomic(str(tmp_path / "f.png"), img)
    assert not os.path.exists(path + ".part")
    back = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if channels == 3:
        back = back[..., ::-1]
    elif channels == 4:
        back = back[..., [2, 1, 0, 3]]
    assert np.array_equal(back, img)


def test_exr_reader_matches_openexr(tmp_path):
    import OpenEXR
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 10, (7, 9)).astype(np.float32)
    rgb = rng.uniform(0, 1, (7, 9, 3)).astype(np.float32)
    half = rng.uniform(0, 1, (7, 9)).astype(np.float16)
    hdr = {"compression": OpenEXR.NO_COMPRESSION, "type": OpenEXR.scanlineimage}
    single = str(tmp_path / "single.exr")
    with OpenEXR.File(hdr, {"L.Depth.Z": depth, "L.Combined": rgb, "L.Half.X": half}) as f:
        f.write(single)
    ch = exr.read_exr(single)
    assert np.array_equal(ch["L.Depth.Z"], depth)
    assert np.array_equal(ch["L.Combined.G"], rgb[..., 1])
    assert np.array_equal(ch["L.Half.X"], half.astype(np.float32))
    multi = str(tmp_path / "multi.exr")
    parts = [OpenEXR.Part(dict(hdr), {"L.Depth.Z": depth}, name="L.Depth"),
             OpenEXR.Part(dict(hdr), {"L.Combined": rgb}, name="L.Combined")]
    with OpenEXR.File(parts) as f:
        f.write(multi)
    ch = exr.read_exr(multi)
    assert np.array_equal(exr.find_channel(ch, "L", "Depth", "Z"), depth)
    assert np.array_equal(ch["L.Combined.B"], rgb[..., 2])
    zipped = str(tmp_path / "zip.exr")
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"Z": depth}) as f:
        f.write(zipped)
    with pytest.raises(exr.ExrError, match="exr_codec='NONE'"):
        exr.read_exr(zipped)


def test_job_transitions_form_a_single_path_to_final_states():
    order = [jobs.QUEUED, jobs.EXPORTING, jobs.SENDING, jobs.GENERATING, jobs.RECEIVING, jobs.DONE]
    for a, b in zip(order, order[1:]):
        assert b in jobs.TRANSITIONS[a]
    for s in order[:-1]:
        assert {jobs.FAILED, jobs.CANCELLED} <= jobs.TRANSITIONS[s]
    for s in jobs.FINAL_STATES:
        assert not jobs.TRANSITIONS[s]
    assert jobs.DONE not in jobs.TRANSITIONS[jobs.EXPORTING]  # never done with frames unsent
