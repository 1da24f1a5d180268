"""Test-session setup shared by every test module.

Blender writes config and caches into the home directory unless these are set
before ``import bpy``; the hub variables make any accidental download fail
loudly instead of reaching for the network.
"""
import ast
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="inhabit-tests-"))
for var, sub in (("BLENDER_USER_RESOURCES", "blender"), ("XDG_CACHE_HOME", "cache"),
                 ("MESA_SHADER_CACHE_DIR", "mesa")):
    os.environ.setdefault(var, str(_SESSION_DIR / sub))
    Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


# -- markers ----------------------------------------------------------------------
# Each test module is marked from what it imports (read from its source, so
# nothing heavy is imported to decide): `pytest -m "not blender and not server"`
# is the fast inner loop. A module may also set `pytestmark` itself.
_MARK_BY_IMPORT = {
    "blender": ("bpy", "mathutils", "bmesh", "tests.blender_scene", "blender_addon.scene", "blender_addon.session",
                "backend.blender.headless", "backend.blender"),
    "torch": ("torch", "diffusers", "transformers", "models.aa2.tiny", "models.aa2.pipeline",
              "backend.server.engines.aa2"),
    "server": ("subprocess", "tests.serverproc", "backend.cli.local_server"),
}
_module_marks: dict[str, set] = {}


def _marks_for(path: Path) -> set:
    key = str(path)
    if key not in _module_marks:
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
        _module_marks[key] = {mark for mark, prefixes in _MARK_BY_IMPORT.items()
                              if any(n == p or n.startswith(p + ".") for n in names for p in prefixes)}
    return _module_marks[key]


def pytest_ignore_collect(collection_path, config):
    """The Blender-only venvs (``make test-blender-5.2`` and co., on Python 3.13) have no torch: modules that
    import it are not collected there (None lets pytest decide as usual)."""
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_") \
            and "torch" in _marks_for(collection_path) and importlib.util.find_spec("torch") is None:
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        for mark in _marks_for(Path(item.fspath)):
            item.add_marker(getattr(pytest.mark, mark))
        if "tiny_weights" in getattr(item, "fixturenames", ()):  # saving tiny weights runs the diffusion stack
            item.add_marker(pytest.mark.torch)


# -- tiny weight folders of each engine, made once per session on first use -------------
@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """``tiny_weights("aa2")`` / ``tiny_weights("wan-animate")``: the folder ``inhabit doctor --save-tiny`` writes."""
    from tests.cli import save_tiny
    made: dict = {}

    def get(engine: str = "aa2"):
        if engine not in made:
            made[engine] = save_tiny(tmp_path_factory.mktemp(engine) / "tiny", engine)
        return made[engine]
    return get


# -- a tiny rendered training dataset, made once per session on first use -----------
@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """``inhabit dataset make`` output: 4 clips x 3 frames x 32 px (splits: 2 train, 1 val, 1 test)."""
    import subprocess
    root = tmp_path_factory.mktemp("dataset") / "data"
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "dataset", "make", "--out", str(root), "--clips", "4",
                           "--frames", "3", "--size", "32", "--samples", "1", "--workers", "2"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """bpy 4.2.0 as a module can crash while Python shuts down after a job test registered the add-on
    and loaded another file (a segfault in its own teardown, after every result is reported: seen on
    main before any add-on change). End such a run with pytest's own status instead."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and tuple(bpy.app.version[:2]) == (4, 2):
        status = getattr(config, "_inhabit_exitstatus", None)
        if status is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(status))


def pytest_sessionfinish(session, exitstatus):
    session.config._inhabit_exitstatus = exitstatus
