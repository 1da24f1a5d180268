"""Farms and remote servers: ``inhabit render`` as a real process against a real
``inhabit serve`` -- CurveZMQ keys end to end, the signals a farm manager
sends, a server lost mid-job, ``--resume`` after restarting it, a private
server when no --server is given, and bad input refused before any work."""
import os
import signal
import subprocess
import sys
import time

import bpy  # noqa: E402  (a required test dependency: missing bpy must fail, not skip)
import numpy as np
import pytest

from blender_addon import compat  # noqa: E402
from blender_addon.core import png  # noqa: E402
from blender_addon.core.client import Client, ServerUnreachable  # noqa: E402
from tests import serverproc  # noqa: E402
from tests.cli import inhabit
from tests.blender_scene import build_scene  # noqa: E402
from tests.serverproc import REPO_ROOT, start_server  # noqa: E402

ECHO = "tests.engines_for_tests:EchoEngine"
WINDOW_ECHO = "tests.engines_for_tests:WindowEchoEngine"
SIZE = 64


_cli = inhabit


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """A saved .blend of the test scene (6 frames) and a reference image."""
    d = tmp_path_factory.mktemp("shot")
    build_scene(size=SIZE, frames=6)
    blend = str(d / "shot.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    ref = str(d / "ref.png")
    png.write_png_atomic(ref, np.full((32, 24, 3), 140, np.uint8))
    return blend, ref


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    assert _cli("keys", "generate", d / "k").returncode == 0
    assert _cli("keys", "generate", d / "other").returncode == 0
    return d / "k", d / "other"


def render_args(shot, out, *extra):
    blend, ref = shot
    return ["render", blend, "--armature", "Rig", "--reference", ref, "--resolution", f"{SIZE}x{SIZE}",
            "--samples", "1", "--out", out, *extra]


def pngs(take_dir):
    return sorted(n for n in os.listdir(take_dir) if n.endswith(".png"))


def take_of(out):
    shot_dir = os.path.join(out, "Shot")
    return os.path.join(shot_dir, sorted(os.listdir(shot_dir))[-1])


def strip_length(blend_path):
    bpy.ops.wm.open_mainfile(filepath=str(blend_path))
    strips = list(compat.strips(bpy.context.scene.sequence_editor))
    assert len(strips) == 1
    return strips[0].frame_final_duration


def wait_for_frames(out, n, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        shot_dir = os.path.join(out, "Shot")
        if os.path.isdir(shot_dir) and os.listdir(shot_dir) and len(pngs(take_of(out))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} frames after {timeout} s")


def popen_render(args):
    return subprocess.Popen([sys.executable, "-m", "backend.cli", *map(str, args)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# -- keys end to end ------------------------------------------------------------------------
def test_farm_example_renders_against_a_keyed_server(shot, keys, tmp_path):
    k, other = keys
    port = serverproc.free_port()
    with start_server((ECHO,), address=f"tcp://0.0.0.0:{port}", wait=False,
                      extra_args=("--curve-secret-key", k / "server.key_secret",
                                  "--allow-client-key", k / "client.key")) as srv:
        addr = f"127.0.0.1:{port}"  # host:port, no tcp://
        deadline = time.monotonic() + 20
        while _cli("info", "--server", addr, "--timeout", "0.5", "--curve-server-key", k / "server.key",
                   "--curve-client-key", k / "client.key_secret").returncode != 0:
            assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log()
        saved = tmp_path / "done.blend"
        out = _cli(*render_args(shot, tmp_path / "out", "--engine", "echo", "--frames", "1-2", "--server", addr,
                                "--curve-server-key", k / "server.key", "--curve-client-key", k / "client.key_secret",
                                "--save-blend", saved))
        assert out.returncode == 0, out.stderr
        assert pngs(take_of(tmp_path / "out")) == ["frame_00001.png", "frame_00002.png"]
        assert strip_length(saved) == 2

        cases = {
            "unknown key": (["--curve-server-key", k / "server.key", "--curve-client-key", other / "client.key_secret"],
                            "refused this client's key"),
            "no key": ([], "requires CurveZMQ keys"),
            "wrong server key": (["--curve-server-key", other / "server.key", "--curve-client-key",
                                  k / "client.key_secret"], "check that --curve-server-key is that server's own"),
        }
        for name, (key_args, words) in cases.items():
            t0 = time.monotonic()
            res = _cli(*render_args(shot, tmp_path / name, "--engine", "echo", "--server", addr, *key_args))
            assert res.returncode == 2, (name, res.stderr)
            last = res.stderr.strip().splitlines()[-1]
            assert words in last and "inhabit serve --bind" not in last, (name, last)
            assert time.monotonic() - t0 < 15
            assert not (tmp_path / name).exists()  # refused before a take folder was made
        log = srv.wait_for_log("reason=client_key_not_allowed")
        assert "handshake_refused peer=127.0.0.1" in log
        assert "reason=plain_text_or_wrong_server_key" in log


def test_info_never_shows_a_traceback_for_bad_keys_or_addresses(keys, tmp_path):
    k, _ = keys
    (tmp_path / "junk.key").write_text("not a key\n")
    cases = [
        (["--curve-server-key", tmp_path / "none.key", "--curve-client-key", k / "client.key_secret"],
         "does not exist"),
        (["--curve-server-key", tmp_path / "junk.key", "--curve-client-key", k / "client.key_secret"],
         "is not a CurveZMQ key file"),
        (["--curve-server-key", k / "server.key", "--curve-client-key", k / "client.key"], "holds only a public key"),
        (["--curve-server-key", k / "server.key"], "without --curve-client-key"),
        (["--server", "tcp://nowhere"], "'tcp://nowhere' is not an address"),
    ]
    for extra, words in cases:
        server = ["--server", "127.0.0.1:9"] if "--server" not in extra else []
        res = _cli("info", *server, *extra, "--timeout", "0.3")
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert words in res.stderr, res.stderr


def test_loopback_is_decided_on_the_resolved_address():
    from backend.server.security import SecurityError, is_local
    assert is_local("tcp://127.0.0.1:5557") and is_local("tcp://localhost:5557") and is_local("tcp://[::1]:5557")
    assert not is_local("tcp://127.attacker.example:5557")
    assert not is_local("tcp://0.0.0.0:5557") and not is_local("tcp://*:5557")
    with pytest.raises(SecurityError, match="not an address"):
        is_local("tcp://127.0.0.1")
    out = _cli("serve", "--bind", f"tcp://127.attacker.example:{serverproc.free_port()}", "--engine", ECHO)
    assert out.returncode == 2 and "only loopback is allowed without CurveZMQ" in out.stderr


# -- signals and faults -----------------------------------------------------------------------
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_farm_signal_cancels_at_once_and_keeps_frames(shot, tmp_path, signum, code):
    with start_server((ECHO,)) as srv:
        out, saved = tmp_path / "out", tmp_path / "partial.blend"
        proc = popen_render(render_args(shot, out, "--engine", "echo", "--server", srv.address,
                                        "--param", "delay=0.4", "--save-blend", saved))
        wait_for_frames(out, 2, proc)
        t0 = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == code, err
        assert time.monotonic() - t0 < 6
        last = err.strip().splitlines()[-1]
        kept = len(pngs(take_of(out)))
        assert f"stopped by {signal.Signals(signum).name}" in last and f"{kept} of 6 frames kept" in last
        assert 2 <= kept < 6 and strip_length(saved) == kept
        log = srv.wait_for_log("cancelled job=", timeout=3)  # told at once, not found silent 10 s later
        assert "client_lost" not in log


def test_server_lost_then_restarted_and_resumed(shot, tmp_path):
    address = f"tcp://127.0.0.1:{serverproc.free_port()}"
    out, saved = tmp_path / "out", tmp_path / "lost.blend"
    args = render_args(shot, out, "--engine", "echo", "--server", address, "--server-timeout", "1.5",
                       "--param", "delay=0.3")
    with start_server((ECHO,), address=address) as srv:
        proc = popen_render([*args, "--save-blend", saved])
        wait_for_frames(out, 2, proc)
        srv.proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    take = take_of(out)
    kept = pngs(take)
    assert 2 <= len(kept) < 6 and "Lost the server" in err and "--resume" in err.strip().splitlines()[-1]
    assert strip_length(saved) == len(kept)
    before = {n: os.stat(os.path.join(take, n)).st_mtime_ns for n in kept}
    with start_server((ECHO,), address=address):
        res = _cli(*args, "--resume", "--save-blend", tmp_path / "resumed.blend")
    assert res.returncode == 0, res.stderr
    assert f"{len(kept)} of 6 frames on disk, generating {6 - len(kept)}" in res.stderr
    assert take_of(out) == take and pngs(take) == [f"frame_{i:05d}.png" for i in range(1, 7)]
    assert {n: os.stat(os.path.join(take, n)).st_mtime_ns for n in kept} == before  # kept, not redone
    assert strip_length(tmp_path / "resumed.blend") == 6


def test_resume_restarts_a_windowed_engine_at_a_window_start(shot, tmp_path):
    from backend.blender.shot_args import open_blend
    from blender_addon.core.settings import ShotSettings
    from backend.blender.headless import run_shot
    blend, ref = shot
    with start_server((WINDOW_ECHO,)) as srv:
        def settings(**params):
            return ShotSettings(armature="Rig", reference_path=ref, frame_start=1, frame_end=6, width=SIZE,
                                height=SIZE, output_dir=str(tmp_path / "out"), engine="window_echo",
                                server=srv.address, samples=1, params={"window": 3, "overlap": 1, **params})
        shot_dir = tmp_path / "out" / "Shot"

        def five_on_disk():  # asked every loop turn: the engine is 0.3 s into frame 6 by then
            return shot_dir.is_dir() and len(list(shot_dir.glob("take_*/frame_*.png"))) >= 5
        first = run_shot(open_blend(blend, None), settings(delay=0.3), should_cancel=five_on_disk)
        assert first.state == "cancelled"
        take = take_of(tmp_path / "out")
        kept = len(pngs(take))
        assert kept == 5
        before = {n: os.stat(os.path.join(take, n)).st_mtime_ns for n in pngs(take)}
        plans = []
        result = run_shot(open_blend(blend, None), settings(delay=0.3), resume_take=True, on_plan=plans.append)
    # windows of 3 frames sharing 1 start at 0, 2, 4: missing index 5 is in the window starting at index 4
    assert result.state == "done" and result.frames == 6
    assert (result.regenerated, result.kept) == (1, 4)
    assert "5 of 6 frames on disk, generating 1 and regenerating 1 kept frame" in plans[0]
    after = {n: os.stat(os.path.join(take, n)).st_mtime_ns for n in before}
    assert [n for n in before if after[n] != before[n]] == ["frame_00005.png"]


def test_resume_refuses_a_take_made_with_other_settings(shot, tmp_path):
    with start_server((ECHO,)) as srv:
        out = tmp_path / "out"
        first = _cli(*render_args(shot, out, "--engine", "echo", "--server", srv.address, "--frames", "1-2"))
        assert first.returncode == 0, first.stderr
        res = _cli(*render_args(shot, out, "--engine", "echo", "--server", srv.address, "--frames", "1-3", "--resume"))
    assert res.returncode == 2 and "was made with frame_end 2, not 3" in res.stderr


# -- a private server -------------------------------------------------------------------------
def test_render_without_server_starts_a_private_one(shot, tmp_path):
    res = _cli(*render_args(shot, tmp_path / "out", "--engine", ECHO, "--frames", "1-2"))
    assert res.returncode == 0, res.stderr
    assert pngs(take_of(tmp_path / "out")) == ["frame_00001.png", "frame_00002.png"]
    line = next(ln for ln in res.stderr.splitlines() if "started a private server" in ln)
    address = line.rsplit(" at ", 1)[1]
    assert address.startswith("tcp://127.0.0.1:")
    with Client(address, timeout=0.3) as cl, pytest.raises(ServerUnreachable):
        cl.info()  # gone with the run


def test_a_private_server_that_cannot_start_is_one_sentence(shot, tmp_path):
    res = _cli(*render_args(shot, tmp_path / "out", "--engine", "nope"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "the private server did not start" in last and "nope" in last
    assert not (tmp_path / "out").exists()


def test_a_private_server_ends_when_its_render_is_killed(shot, tmp_path):
    proc = popen_render(render_args(shot, tmp_path / "out", "--engine", ECHO, "--param", "delay=0.5"))
    line = proc.stderr.readline()
    while "started a private server" not in line:
        assert line, proc.communicate()
        line = proc.stderr.readline()
    address = line.strip().rsplit(" at ", 1)[1]
    wait_for_frames(tmp_path / "out", 1, proc)
    proc.kill()
    proc.wait(5)
    deadline = time.monotonic() + 10
    while True:
        with Client(address, timeout=0.3) as cl:
            try:
                cl.info()
            except ServerUnreachable:
                break
        assert time.monotonic() < deadline, "the private server outlived its render"


# -- bad input ----------------------------------------------------------------------------------
def test_bad_input_exits_2_before_a_take_is_made(shot, tmp_path):
    blend, ref = shot
    not_blend = tmp_path / "notes.blend"
    not_blend.write_text("these are notes, not a blend file\n")
    res = _cli("render", not_blend, "--armature", "Rig", "--reference", ref, "--out", tmp_path / "a",
               "--server", "127.0.0.1:9")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"inhabit render: {str(not_blend)!r} is not a .blend file: "
                                               "give the path of a file saved by Blender."]
    with start_server(("preview",)) as srv:
        info = Client(srv.address).info()
        if not next(e for e in info["engines"] if e["name"] == "preview")["needs_reference_keypoints"]:
            pytest.skip("the pose detector is installed: the preview engine needs no reference keypoints")
        res = _cli(*render_args(shot, tmp_path / "b", "--engine", "preview", "--server", srv.address))
    assert res.returncode == 2 and "needs the reference image's keypoints" in res.stderr
    assert not (tmp_path / "b").exists()


def test_a_job_the_engine_refuses_is_bad_input_with_no_take(shot, tmp_path):
    # The engine's own job check (validate, run at SUBMIT) is reported as bad input: exit 2,
    # its sentence, and no take folder named or left behind (as wan-animate's segment_length
    # <= carried_frames).
    with start_server((WINDOW_ECHO,)) as srv:
        res = _cli(*render_args(shot, tmp_path / "out", "--engine", "window_echo", "--server", srv.address,
                                "--param", "window=2", "--param", "overlap=3"))
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "params.overlap (3) must be smaller than params.window (2)" in last
    assert "take_" not in res.stderr and "--resume" not in last
    assert not os.path.exists(tmp_path / "out" / "Shot") or not os.listdir(tmp_path / "out" / "Shot")


def test_engines_declare_where_a_resumed_shot_restarts():
    from backend.server.engines.aa2 import AA2Engine
    from backend.server.engines.preview import PreviewEngine
    from blender_addon.core import protocol, resume
    aa2 = AA2Engine.describe()
    assert aa2["restart_window"] == {"frames": "context_frames", "overlap": "overlap"}
    assert PreviewEngine.describe()["restart_window"] is None
    params = {"context_frames": 16, "overlap": 4}   # windows start at 0, 12, 24, ...
    assert [protocol.restart_frame(aa2, params, f) for f in (0, 11, 12, 30)] == [0, 0, 12, 24]
    assert protocol.restart_frame(PreviewEngine.describe(), {}, 30) == 30
    # a gap's window reaching back into the previous run merges them (frame 40 is generated again)
    assert resume.plan(set(range(30)) | {40}, 45, aa2, params) == [resume.Run(24, 44, 30)]
    assert resume.plan(set(range(30)) | {40}, 45, PreviewEngine.describe(), {}) == [resume.Run(30, 39, 30),
                                                                                    resume.Run(41, 44, 41)]
