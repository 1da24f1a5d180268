"""The built extension zips: one per Python, each read by Blender's own tool as
that Python; the one for the running Blender installs headless (bpy 4.2, 5.0,
5.2, 5.3), registers its operators and panels and unregisters without leaving
anything behind; the other is refused by Blender or says which file to take."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bpy  # noqa: E402,F401

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import build_addon  # noqa: E402

INSTALL_SCRIPT = r"""
import json, os, sys
import bpy, addon_utils
zip_path = sys.argv[1]
out = {}
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
mod = "bl_ext.user_default.inhabit"
out["enabled"] = mod in {a.module for a in bpy.context.preferences.addons}
out["operators"] = sorted(n for n in ("animate", "cancel", "test_connection", "start_server", "make_proxy")
                          if hasattr(bpy.types, "INHABIT_OT_" + n))
out["panels"] = [p for p in ("VIEW3D_PT_inhabit", "SEQUENCER_PT_inhabit") if hasattr(bpy.types, p)]
out["scene_prop"] = hasattr(bpy.types.Scene, "inhabit")
import importlib
notice = importlib.import_module(mod + ".ui.notice")
out["notice"] = notice._message
out["notice_panels"] = [p for p in ("VIEW3D_PT_inhabit_notice", "SEQUENCER_PT_inhabit_notice") if hasattr(bpy.types, p)]
core = importlib.import_module(mod + ".core.protocol")
out["protocol_version"] = core.PROTOCOL_VERSION
import zmq
out["zmq_from"] = zmq.__file__
user = os.environ["BLENDER_USER_RESOURCES"]
out["zmq_unpacked"] = [d for d, _, files in os.walk(user) if d.endswith(os.sep + "zmq") and "__init__.py" in files]
addon_utils.disable(mod, default_set=True)
out["after_panels"] = [p for p in ("VIEW3D_PT_inhabit", "SEQUENCER_PT_inhabit") if hasattr(bpy.types, p)]
out["after_scene_prop"] = hasattr(bpy.types.Scene, "inhabit")
out["after_notice_panels"] = [p for p in out["notice_panels"] if hasattr(bpy.types, p)]
out["after_ops"] = [c for c in dir(bpy.types) if c.startswith("INHABIT_OT")]
out["after_handlers"] = [h.__name__ for hs in (bpy.app.handlers.load_pre, bpy.app.handlers.load_post)
                         for h in hs if "inhabit" in getattr(h, "__module__", "")]
print("RESULT" + json.dumps(out))
"""


def test_wheel_selection_covers_every_platform_and_python():
    names = ["pyzmq-27.3.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",
             "pyzmq-27.3.0-cp312-abi3-win_amd64.whl", "pyzmq-27.3.0-cp311-cp311-macosx_10_15_universal2.whl"]
    assert build_addon._wheel_serves(names[0], "311", "linux-x64")
    assert not build_addon._wheel_serves(names[0], "313", "linux-x64")   # cp311 build, not abi3
    assert build_addon._wheel_serves(names[1], "313", "windows-x64")     # abi3 from 3.12 on
    assert not build_addon._wheel_serves(names[1], "311", "windows-x64")
    assert build_addon._wheel_serves(names[2], "311", "macos-arm64")
    assert build_addon._wheel_serves(names[2], "311", "macos-x64")


def test_manifest_validation_names_the_problem():
    with open(ROOT / "blender_addon" / "blender_manifest.toml", "rb") as fh:
        import tomllib
        good = tomllib.load(fh)
    build_addon.validate_manifest(dict(good, wheels=[]), wheel_names=[])
    for change, words in ((dict(tagline="Ends with a dot."), "tagline"), (dict(id="In-habit"), "id"),
                          (dict(permissions={"network": "x"}), "'files' permission"),
                          (dict(wheels=["./wheels/x.whl"]), "do not match")):
        with pytest.raises(build_addon.BuildError, match=words):
            build_addon.validate_manifest(dict(good, **change), wheel_names=[])


def _built_zips(tmp_path) -> tuple[dict, bool]:
    """{python_min: zip} of the real per-Python zips when the wheel cache is there (``make test`` fills it),
    else {"dev": the development zip} (pyzmq from the venv)."""
    cache = ROOT / "build" / "wheel-cache"
    try:
        zips = build_addon.build(out=tmp_path / "dist", cache=cache, offline=True)
    except build_addon.BuildError:
        return {"dev": build_addon.build(out=tmp_path / "dist", cache=cache, offline=True, with_wheels=False)[0]}, False
    return {f.python_min: z for f, z in zip(build_addon.FLAVOURS, zips)}, True


def _this_python_zip(zips: dict):
    """The zip built for the running Python, and the other one."""
    running = sys.version_info[:2]
    mine = next(f for f in build_addon.FLAVOURS
                if running >= tuple(map(int, f.python_min.split("."))) and
                (f.python_max is None or running <= tuple(map(int, f.python_max.split(".")))))
    other = next(f for f in build_addon.FLAVOURS if f is not mine)
    return zips[mine.python_min], zips[other.python_min]


def _install(zpath, tmp_path, name="user"):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / name))
    proc = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(zpath)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    return (json.loads(line[len("RESULT"):]) if line else None), proc.stdout[-2000:] + proc.stderr[-2000:]


def test_each_zip_names_its_python_and_passes_blenders_validation(tmp_path):
    zips, with_wheels = _built_zips(tmp_path)
    if not with_wheels:
        pytest.skip("no wheel cache: `make test` fills build/wheel-cache with `build_addon.py --download-only`")
    cli = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli"
    sys.path.insert(0, str(cli))
    try:
        import blender_ext  # Blender's own extension tool, as `blender --command extension` runs it
    finally:
        sys.path.remove(str(cli))
    read = {}
    for flavour, zpath in zip(build_addon.FLAVOURS, zips.values()):
        assert zpath.name == f"inhabit-{_version()}-{flavour.suffix}.zip"
        proc = subprocess.run([sys.executable, str(cli / "blender_ext.py"), "validate", str(zpath)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with zipfile.ZipFile(zpath) as z:
            import tomllib
            manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
            info = json.loads(z.read("build_info.json"))
        assert manifest["blender_version_min"] == flavour.blender_min
        assert manifest.get("blender_version_max") == flavour.blender_max
        assert info["python_min"] == flavour.python_min
        ours = build_addon.blender_python_versions(manifest["wheels"])
        if hasattr(blender_ext, "python_versions_from_wheels"):  # 4.2 reads no Python version from wheels
            versions = blender_ext.python_versions_from_wheels(manifest["wheels"])
            assert {".".join(map(str, v)) for v in versions} == ours
        read[flavour.python_min] = ours
    # 4.2-5.0 (Python 3.11) get the cp311 zip; 3.13/3.14 builds the abi3 one, which Blender reads as any Python 3.
    assert read == {"3.11": {"3.11"}, "3.12": {"3"}}


def _version():
    import tomllib
    with open(ROOT / "blender_addon" / "blender_manifest.toml", "rb") as fh:
        return tomllib.load(fh)["version"]


def test_built_zip_installs_and_unregisters_cleanly(tmp_path):
    zips, with_wheels = _built_zips(tmp_path)
    zpath = _this_python_zip(zips)[0] if with_wheels else zips["dev"]
    names = zipfile.ZipFile(zpath).namelist()
    assert "blender_manifest.toml" in names and "core/protocol.py" in names and "__init__.py" in names
    assert not any("__pycache__" in n for n in names)
    out, log = _install(zpath, tmp_path)
    assert out, log
    assert out["enabled"]
    assert out["operators"] == ["animate", "cancel", "make_proxy", "start_server", "test_connection"]
    assert out["panels"] == ["VIEW3D_PT_inhabit", "SEQUENCER_PT_inhabit"] and out["scene_prop"]
    assert out["protocol_version"] == 1
    if with_wheels:  # Blender unpacked the bundled wheel for this platform into the user's extensions
        assert out["zmq_unpacked"], "the bundled pyzmq wheel was not installed"
    assert out["after_panels"] == [] and not out["after_scene_prop"] and out["after_ops"] == []
    assert out["after_handlers"] == []


def test_zip_for_another_python_is_refused_or_says_which_file_to_take(tmp_path):
    zips, with_wheels = _built_zips(tmp_path)
    if not with_wheels:
        pytest.skip("no wheel cache: `make test` fills build/wheel-cache with `build_addon.py --download-only`")
    mine, other = _this_python_zip(zips)
    out, log = _install(other, tmp_path)
    if sys.version_info[:2] != (3, 11):
        # Blender itself refuses the cp311 zip on a newer Blender (its maximum version) or on a build with
        # a newer Python (Debian's 4.3), in one sentence.
        assert out is None, log
        assert "must be less than the maximum version (5.1.0)" in log or "isn't compatible with (3.11)" in log, log
        return
    # Blender reads the abi3 zip as "any Python 3" and installs it on 3.11: the add-on says which file to take,
    # in its panel, and registers nothing else.
    assert out is not None, log
    assert out["notice"] and mine.name in out["notice"] and "Python 3.11" in out["notice"], out["notice"]
    assert out["notice_panels"] == ["VIEW3D_PT_inhabit_notice", "SEQUENCER_PT_inhabit_notice"]
    assert out["operators"] == [] and out["panels"] == [] and not out["scene_prop"]
    assert out["after_notice_panels"] == []


def test_what_this_blender_lacks_is_one_sentence(monkeypatch):
    from blender_addon import dependencies
    info = build_addon.build_info(build_addon.FLAVOURS[1], "0.1.0", "inhabit")
    sentence = dependencies.wrong_python(info, (3, 11))
    assert sentence.startswith("This Inhabit file is built for Python 3.12 or later but this Blender runs "
                               "Python 3.11")
    assert "install inhabit-0.1.0-blender-4.2-to-5.0-python-3.11.zip instead" in sentence
    assert dependencies.wrong_python(info, (3, 14)) is None
    monkeypatch.setattr(dependencies, "BUILD_INFO", "/nonexistent/build_info.json")
    numpy = sys.modules["numpy"]
    monkeypatch.setitem(sys.modules, "numpy", None)  # a distribution's Blender without numpy
    assert dependencies.problem().startswith("This Blender has no numpy, which Inhabit needs: install numpy")
    monkeypatch.setitem(sys.modules, "numpy", numpy)
    monkeypatch.setitem(sys.modules, "zmq", None)
    assert dependencies.problem().startswith("pyzmq did not load in this Blender's Python")
