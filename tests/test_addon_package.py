"""The built extension zip installs into bpy 5.0.1 headless, registers its
operators and panels, and unregisters without leaving anything behind."""
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
                          if hasattr(bpy.ops.inhabit, n) and bpy.ops.inhabit.__getattr__(n).idname() )
out["panels"] = [p for p in ("VIEW3D_PT_inhabit", "SEQUENCER_PT_inhabit") if hasattr(bpy.types, p)]
out["scene_prop"] = hasattr(bpy.types.Scene, "inhabit")
import importlib
core = importlib.import_module(mod + ".core.protocol")
out["protocol_version"] = core.PROTOCOL_VERSION
import zmq
out["zmq_from"] = zmq.__file__
user = os.environ["BLENDER_USER_RESOURCES"]
out["zmq_unpacked"] = [d for d, _, files in os.walk(user) if d.endswith(os.sep + "zmq") and "__init__.py" in files]
addon_utils.disable(mod, default_set=True)
out["after_panels"] = [p for p in ("VIEW3D_PT_inhabit", "SEQUENCER_PT_inhabit") if hasattr(bpy.types, p)]
out["after_scene_prop"] = hasattr(bpy.types.Scene, "inhabit")
out["after_ops"] = [c for c in dir(bpy.types) if c.startswith("INHABIT_OT")]
out["after_handlers"] = [h.__name__ for h in bpy.app.handlers.load_pre if "inhabit" in getattr(h, "__module__", "")]
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


def test_built_zip_installs_and_unregisters_cleanly(tmp_path):
    cache = ROOT / "build" / "wheel-cache"
    try:  # the real zip when the wheel cache is there; else the dev zip (pyzmq from the venv)
        zpath = build_addon.build(out=tmp_path / "dist", cache=cache, offline=True)
        with_wheels = True
    except build_addon.BuildError:
        zpath = build_addon.build(out=tmp_path / "dist", cache=cache, offline=True, with_wheels=False)
        with_wheels = False
    names = zipfile.ZipFile(zpath).namelist()
    assert "blender_manifest.toml" in names and "core/protocol.py" in names and "__init__.py" in names
    assert not any("__pycache__" in n for n in names)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    proc = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(zpath)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(line[len("RESULT"):])
    assert out["enabled"]
    assert out["operators"] == ["animate", "cancel", "make_proxy", "start_server", "test_connection"]
    assert out["panels"] == ["VIEW3D_PT_inhabit", "SEQUENCER_PT_inhabit"] and out["scene_prop"]
    assert out["protocol_version"] == 1
    if with_wheels:  # Blender unpacked the bundled wheel for this platform into the user's extensions
        assert out["zmq_unpacked"], "the bundled pyzmq wheel was not installed"
    assert out["after_panels"] == [] and not out["after_scene_prop"] and out["after_ops"] == []
    assert out["after_handlers"] == []
