"""Server-side engine options: declared by the engine (``server_options``),
set with ``inhabit serve --engine-option NAME=VALUE``, checked before the
server listens, and handed to each engine instance as ``self.options``."""
from __future__ import annotations

import numpy as np
import pytest

from backend.server.engines.options import OptionError, from_text, resolve
from blender_addon.core import protocol
from blender_addon.core.client import Client, run_job
from blender_addon.core.protocol import ParamSpec
from tests.cli import inhabit
from tests.engines_for_tests import EchoEngine
from tests.serverproc import start_server

ECHO = "tests.engines_for_tests:EchoEngine"


class _Tiered(EchoEngine):
    name = "tiered"
    server_options = (ParamSpec("memory", "choice", "auto", choices=("auto", "full")),
                      ParamSpec("fp8", "bool", False), ParamSpec("blocks", "int", 4, 1, 64),
                      ParamSpec("tint", "choice", "magenta", choices=("magenta", "green")))


def test_resolve_fills_defaults_and_applies_a_name_to_every_engine_declaring_it():
    got = resolve([EchoEngine, _Tiered], ["tint=green", "fp8=on", "blocks=8"])
    assert got == {"echo": {"tint": "green"},
                   "tiered": {"memory": "auto", "fp8": True, "blocks": 8, "tint": "green"}}
    assert resolve([EchoEngine], []) == {"echo": {"tint": "magenta"}}


@pytest.mark.parametrize("assignment, words", [
    ("memory", "must be NAME=VALUE"),
    ("=full", "must be NAME=VALUE"),
    ("nope=1", "'nope' is not an option of the served engines (echo, tiered); they take: blocks (tiered)"),
    ("memory=huge", "--engine-option memory must be one of ['auto', 'full'], got 'huge'"),
    ("fp8=maybe", "--engine-option fp8 must be true or false"),
    ("blocks=2.5", "--engine-option blocks must be a whole number, got '2.5'"),
    ("blocks=0", "--engine-option blocks must be in [1, 64], got 0"),
])
def test_a_bad_assignment_is_one_sentence_naming_the_option(assignment, words):
    with pytest.raises(OptionError) as err:
        resolve([EchoEngine, _Tiered], [assignment])
    assert words in str(err.value) and "\n" not in str(err.value)


def test_from_text_reads_each_kind():
    assert from_text(ParamSpec("x", "float", 1.0, 0.0, 2.0), "0.5") == 0.5
    assert from_text(ParamSpec("x", "str", ""), "/some/dir") == "/some/dir"
    assert from_text(ParamSpec("x", "bool", True), "No") is False


def test_engine_instances_get_their_options_with_defaults():
    assert EchoEngine().options == {"tint": "magenta"}
    assert EchoEngine(options={"tint": "green"}).options == {"tint": "green"}


def test_serve_refuses_an_unknown_or_bad_option_before_listening():
    for opt, words in (("tint=blue", "--engine-option tint must be one of"),
                       ("memory=full", "'memory' is not an option of the served engines (echo)")):
        out = inhabit("serve", "--engine", ECHO, "--engine-option", opt, "--bind", "tcp://127.0.0.1:1", timeout=60)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "listening" not in out.stderr


def test_an_option_reaches_the_engine_through_a_real_server():
    h = w = 8
    env = np.full((h, w, 3), 100, np.uint8)
    mask = np.full((h, w), 255, np.uint8)
    ref = np.full((h, w, 3), 50, np.uint8)
    with start_server((ECHO,), extra_args=("--engine-option", "tint=green")) as srv:
        with Client(srv.address) as cl:
            (entry,) = cl.info()["engines"]
            assert entry["options"] == {"tint": "green"}
            assert entry["server_options"][0]["name"] == "tint"
            spec = protocol.JobSpec(engine="echo", width=w, height=h, frames=1)
            events = run_job(cl, spec, ref, [(0, {"environment": env, "character_mask": mask})], timeout=30)
    rgba = next(e for e in events if e.type == protocol.RESULT).arrays[protocol.RESULT_RGBA]
    assert tuple(rgba[0, 0, :3]) == (50, 178, 50)      # half green over 100: the option took effect
