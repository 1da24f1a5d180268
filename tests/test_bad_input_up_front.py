"""Every bad input is caught up front: one sentence naming it and the fix, exit 2,
before the server listens or any work starts (issue 18's list, on real processes)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from blender_addon.core import protocol as P
from blender_addon.core.client import Client, JobFailed, run_job
from tests.cli import inhabit
from tests.serverproc import free_port, start_server

ECHO = "tests.engines_for_tests:EchoEngine"
NOWHERE = "tcp://127.0.0.1:1"


def one_sentence(proc, *words):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "usage:" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("flags, words", [
    (("--max-frames", "-1"), "--max-frames must be at least 1, got -1"),
    (("--heartbeat-timeout", "-5"), "--heartbeat-timeout must be a positive number of seconds"),
    (("--frame-timeout", "0"), "--frame-timeout must be a positive number of seconds"),
    (("--workers", "0"), "--workers must be at least 1"),
    (("--max-width", "0"), "--max-width must be at least 1"),
    (("--engine", "nope"), "unknown engine 'nope'"),
    (("--bind", "foo"), "'foo' is not an address"),
])
def test_serve_refuses_a_bad_number_engine_or_address(flags, words):
    bind = () if "--bind" in flags else ("--bind", NOWHERE)
    one_sentence(inhabit("serve", "--engine", ECHO, *bind, *flags), words)


def test_serve_refuses_a_key_file_that_is_not_a_key(tmp_path):
    junk = tmp_path / "server.key_secret"
    junk.write_text("not a key\n")
    one_sentence(inhabit("serve", "--engine", ECHO, "--bind", NOWHERE, "--curve-secret-key", junk,
                         "--allow-client-key", junk), "--curve-secret-key", "is not a CurveZMQ key file")


def test_serve_refuses_another_engines_weights_folder(tiny_weights):
    wan = tiny_weights("wan-animate")
    line = one_sentence(inhabit("serve", "--engine", "aa2", "--weights", wan, "--bind", NOWHERE, timeout=120),
                        "--weights for engine 'aa2'", "AnimateAnyone2Pipeline")
    assert "listening" not in line


def test_serve_without_engine_serves_every_builtin_whose_needs_are_met(tiny_weights):
    # The help says so: preview always, and each engine whose weights check accepts --weights.
    with start_server(engines=(), weights=str(tiny_weights("wan-animate")), startup_timeout=60) as srv:
        with Client(srv.address) as cl:
            names = [e["name"] for e in cl.info()["engines"]]
        assert names == ["preview", "wan-animate"], srv.log()
        assert "engine_skipped engine=aa2" in srv.log()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    assert inhabit("keys", "generate", d / "k").returncode == 0
    assert inhabit("keys", "generate", d / "other").returncode == 0
    k, other = d / "k", d / "other"
    port = free_port()
    with start_server((ECHO,), address=f"tcp://0.0.0.0:{port}", wait=False,
                      extra_args=("--curve-secret-key", k / "server.key_secret",
                                  "--allow-client-key", k / "client.key")) as srv:
        addr = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while inhabit("info", "--server", addr, "--timeout", "0.5", "--curve-server-key", k / "server.key",
                      "--curve-client-key", k / "client.key_secret").returncode != 0:
            assert time.monotonic() < deadline and srv.proc.poll() is None, srv.log()
        yield addr, k, other


def test_info_exits_2_on_a_refused_handshake(keyed):
    addr, k, other = keyed
    res = inhabit("info", "--server", addr, "--timeout", "1", "--curve-server-key", k / "server.key",
                  "--curve-client-key", other / "client.key_secret")
    one_sentence(res, "refused this client's key")


def test_a_server_secret_key_given_as_the_server_key_is_warned(keyed):
    addr, k, _ = keyed
    res = inhabit("info", "--server", addr, "--timeout", "2", "--curve-server-key", k / "server.key_secret",
                  "--curve-client-key", k / "client.key_secret")
    assert res.returncode == 0, res.stderr                     # it works: the file holds the public half too
    assert "SECRET key" in res.stderr and "server.key" in res.stderr


def test_render_refuses_a_bad_server_timeout_in_one_sentence(tmp_path):
    res = inhabit("render", tmp_path / "shot.blend", "--reference", tmp_path / "r.png", "--out", tmp_path / "o",
                  "--server", "127.0.0.1:9", "--server-timeout", "-1")
    one_sentence(res, "--server-timeout must be a positive number of seconds, got -1.0")


def test_negative_frames_are_a_range_not_argparse_usage(tmp_path):
    res = inhabit("render", tmp_path / "shot.blend", "--frames", "-3-2", "--reference", tmp_path / "r.png",
                  "--out", tmp_path / "o", "--server", "127.0.0.1:9")
    one_sentence(res, "shot.blend")                            # the next problem: no such .blend
    res = inhabit("render", tmp_path / "shot.blend", "--frames", "--reference", tmp_path / "r.png")
    one_sentence(res, "argument --frames: expected one argument", "--frames=-3-2")


def test_a_reference_with_nothing_in_it_is_refused_by_every_engine():
    h = w = 16
    env = {"environment": np.zeros((h, w, 3), np.uint8), "character_mask": np.zeros((h, w), np.uint8)}
    transparent = np.zeros((h, w, 4), np.uint8)
    transparent[..., :3] = 200
    flat = np.zeros((h, w, 3), np.uint8)
    with start_server((ECHO,)) as srv, Client(srv.address) as cl:
        for ref, words in ((transparent, "fully transparent"), (flat, "all black")):
            with pytest.raises(JobFailed, match=words) as err:
                run_job(cl, P.JobSpec("echo", w, h, 1), ref, [(0, env)], timeout=20)
            assert err.value.code == P.E_BAD_PARAM and "submit.reference" in str(err.value)
        assert "started" not in srv.log()


def test_doctor_takes_every_engine_through_its_hooks(tmp_path):
    one_sentence(inhabit("doctor", "--engine", "nope"), "--engine: unknown engine 'nope'")
    one_sentence(inhabit("doctor", "--frames", "0"), "--frames must be at least 1, got 0")
    res = inhabit("doctor", "--engine", "preview", timeout=120)
    assert res.returncode == 0 and "engine 'preview' has no model to smoke-test" in res.stdout, res.stdout
    res = inhabit("doctor", "--engine", "preview", "--save-tiny", tmp_path / "t", timeout=120)
    one_sentence(res, "has no model to save")
    assert not (tmp_path / "t").exists()
