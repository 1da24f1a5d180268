"""The layering of docs/architecture.md, checked on the source (no imports run).

* The add-on zip is self-contained: ``blender_addon/`` imports nothing from
  ``backend/`` or ``models/``, and its ``core/`` never imports bpy.
* Heavy ML is never imported at module level where the server starts or
  Blender runs: torch/diffusers/transformers only inside functions in
  ``backend/`` and never anywhere in ``blender_addon/``.
* bpy lives in the add-on's bpy layer and in ``backend/blender/``; the
  commands import it (and that package) only inside ``run``.
* The models take shared facts from ``blender_addon.core.conventions``, not the
  wire protocol, and know nothing of the server; the preview warp knows nothing
  of the engines that wrap it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BPY = {"bpy", "bmesh", "mathutils", "bpy_extras", "addon_utils"}
HEAVY = {"torch", "diffusers", "transformers", "accelerate", "peft"}


def _imports(path: Path):
    """(module name, at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top = set(map(id, tree.body))
    # Imports under a module-level `if`/`try` still run at import time.
    for node in tree.body:
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                pkg = path.relative_to(ROOT).parent.parts
                base = ".".join(pkg[:len(pkg) - node.level + 1])
                yield (f"{base}.{node.module}" if node.module else base), id(node) in top
            else:
                yield node.module or "", id(node) in top


def _files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _violations(files, rule):
    out = []
    for f in files:
        for name, top in _imports(f):
            why = rule(f.relative_to(ROOT).as_posix(), name.split(".")[0], name, top)
            if why:
                out.append(f"{f.relative_to(ROOT)} imports {name}: {why}")
    return out


def test_addon_is_self_contained_and_its_core_is_bpy_free():
    def rule(rel, first, name, top):
        if first in ("backend", "models"):
            return "the add-on zip ships without backend/ and models/"
        if first in HEAVY:
            return "heavy ML is never imported inside Blender"
        if rel.startswith("blender_addon/core/") and first in BPY:
            return "core/ is the bpy-free layer"
        return None
    assert _violations(_files("blender_addon"), rule) == []


def test_backend_imports_bpy_only_in_its_blender_package_and_ml_lazily():
    def rule(rel, first, name, top):
        in_blender_pkg = rel.startswith("backend/blender/")
        if first in BPY and not in_blender_pkg and (top or not rel.startswith("backend/cli/commands/")):
            return "bpy belongs in backend/blender/ (commands: inside run only)"
        if name.startswith("backend.blender") and not in_blender_pkg and top:
            return "backend/blender/ imports bpy: import it inside the command's run"
        # backend/training/ is the trainer (torch is its job); only `inhabit train`'s run imports it.
        if first in HEAVY and top and not rel.startswith("backend/training/"):
            return "torch & co. load in Engine.load/run or a command's run, so the server starts fast"
        if name.startswith(("blender_addon.scene", "blender_addon.ui", "blender_addon.session",
                            "blender_addon.headless", "blender_addon.vse")) and not in_blender_pkg and top:
            return "the add-on's bpy layer is imported lazily outside backend/blender/"
        return None
    assert _violations(_files("backend"), rule) == []


def test_models_and_warp_know_only_the_layers_below_them():
    def models_rule(rel, first, name, top):
        if first == "backend":
            return "models/ sit below the server and the engines"
        if name.startswith("blender_addon") and name != "blender_addon.core.conventions":
            return "take shared facts from blender_addon.core.conventions"
        return None

    def warp_rule(rel, first, name, top):
        if name.startswith(("backend.server.engines", "backend.server")):
            return "the warp is the preview engine's insides, below the engine layer"
        return None
    assert _violations(_files("models"), models_rule) + _violations(_files("models/warp"), warp_rule) == []


@pytest.mark.parametrize("module", ["blender_addon/core/protocol.py", "blender_addon/core/conventions.py"])
def test_wire_and_conventions_import_only_stdlib_numpy_and_each_other(module):
    allowed = {"__future__", "json", "math", "dataclasses", "typing", "numpy", "blender_addon"}
    bad = [n for n, _ in _imports(ROOT / module) if n.split(".")[0] not in allowed]
    assert bad == []


def test_ray_is_imported_only_inside_functions_so_only_cluster_runs_load_it():
    def rule(rel, first, name, top):
        return "Ray loads only with --cluster: import it inside a function" if first == "ray" and top else None
    assert _violations(_files("backend", "models", "blender_addon"), rule) == []
