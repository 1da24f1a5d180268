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
                            "blender_addon.shot", "blender_addon.vse")) and not in_blender_pkg and top:
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


def _table_folders() -> list[str]:
    """The first column of docs/architecture.md's layer table."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## The layers", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [row.split("`")[1].rstrip("/") for row in rows]


def test_the_architecture_table_lists_every_package_once():
    packages = sorted(str(p.parent.relative_to(ROOT)) for top in ("blender_addon", "backend", "models")
                      for p in (ROOT / top).rglob("__init__.py"))
    listed = _table_folders()
    assert len(listed) == len(set(listed)), "a folder listed twice"
    assert sorted(listed) == packages, "docs/architecture.md's layer table and the packages differ"


def test_no_module_imports_another_packages_private_names():
    bad = []
    for f in _files("backend", "blender_addon", "models", "tests", "bench"):
        tree = ast.parse(f.read_text(encoding="utf-8"), str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in (
                    "backend", "blender_addon", "models", "tests"):
                bad += [f"{f.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert bad == []


def test_the_addon_zip_ships_only_what_the_addon_runs():
    """Every add-on module is reachable from its package's imports (nothing for the command line only)."""
    addon = ROOT / "blender_addon"
    modules = {p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__"): p
               for p in addon.rglob("*.py")}
    reached, todo = set(), ["blender_addon"]
    while todo:
        name = todo.pop()
        if name in reached or name not in modules:
            continue
        reached.add(name)
        for imported, _ in _imports(modules[name]):
            todo.append(imported)
            todo.extend(f"{imported}.{n}" for n in _imported_names(modules[name], imported))
    # core/version.py is the version's one home: it reads the manifest beside the add-on for packaging and the server.
    assert sorted(set(modules) - reached - {"blender_addon.core.version"}) == []


def _imported_names(path: Path, module: str) -> list[str]:
    """Names taken ``from module import a, b`` in ``path`` (they may be submodules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            pkg = path.relative_to(ROOT).parent.parts
            base = ".".join(pkg[:len(pkg) - node.level + 1]) if node.level else ""
            full = (f"{base}.{node.module}" if base and node.module else base or node.module or "")
            if full == module:
                out += [a.name for a in node.names]
    return out
