"""CurveZMQ from the add-on's preferences: the installed extension generates a
client key pair, shows its public key, takes the server's key pasted, and
Test Connection reaches a keyed server (real Blender, real server process)."""
import json
import os
import subprocess
import sys
import time

import bpy  # noqa: E402,F401

from tests.serverproc import free_port, start_server
from tests.test_addon_package import ROOT, build_addon

SCRIPT = r"""
import json, sys
import bpy
zip_path, key_dir, server_key, address = sys.argv[1:5]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
prefs = bpy.context.preferences.addons["bl_ext.user_default.inhabit"].preferences
prefs.key_dir = key_dir
out = {"generate": sorted(bpy.ops.inhabit.generate_client_keys())}
out["client_key"] = prefs.client_key
from bl_ext.user_default.inhabit.ui.preferences import client_public_key
out["public"] = client_public_key(bpy.context)
out["copy"] = sorted(bpy.ops.inhabit.copy_client_public_key())
if address:
    prefs.server_key = server_key  # the server's public key, pasted as text
    bpy.context.scene.inhabit.server = address
    out["test_connection"] = sorted(bpy.ops.inhabit.test_connection())
    from bl_ext.user_default.inhabit.ui import runner
    out["status"] = runner.state.server_status
print("RESULT" + json.dumps(out))
"""


def _blender(zpath, env, key_dir, server_key="", address=""):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(zpath), str(key_dir), server_key, address], env=env,
                          capture_output=True, text=True, timeout=120)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(line[len("RESULT"):])


def test_preferences_generate_keys_and_connect_to_a_keyed_server(tmp_path):
    import zmq.auth
    [zpath] = build_addon.build(out=tmp_path / "dist", cache=ROOT / "build" / "wheel-cache", offline=True,
                              with_wheels=False)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    key_dir = tmp_path / "client_keys"
    first = _blender(zpath, env, key_dir)
    assert first["generate"] == ["FINISHED"] and first["copy"] == ["FINISHED"]
    assert first["client_key"] == str(key_dir / "client.key_secret")
    assert first["public"] == zmq.auth.load_certificate(str(key_dir / "client.key"))[0].decode()
    assert oct(os.stat(key_dir / "client.key_secret").st_mode & 0o777) == "0o600"

    server_dir = tmp_path / "server_keys"
    server_dir.mkdir()
    server_pub, _ = zmq.auth.create_certificates(str(server_dir), "server")
    port = free_port()
    with start_server(("tests.engines_for_tests:EchoEngine",), address=f"tcp://0.0.0.0:{port}", wait=False,
                      extra_args=("--curve-secret-key", server_dir / "server.key_secret",
                                  "--allow-client-key", key_dir / "client.key")) as srv:
        srv.wait_for_log("listening")
        time.sleep(0.2)
        second = _blender(zpath, env, key_dir, zmq.auth.load_certificate(server_pub)[0].decode(),
                          f"127.0.0.1:{port}")
    assert second["public"] == first["public"]  # a second Generate keeps the pair the server allows
    assert second["test_connection"] == ["FINISHED"], second
    assert second["status"].startswith("connected")
