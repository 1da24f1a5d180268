"""The project's version, read from its one home: the add-on's ``blender_manifest.toml``.

Blender requires the version literally in the manifest, so that file is the
source; the server's INFO and the Python package (pyproject's dynamic version)
read it from here.
"""
from __future__ import annotations

import re
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent.parent / "blender_manifest.toml"


def _read_version() -> str:
    # A regex, not tomllib: Blender 4.2+ embeds Python 3.11 (tomllib exists), but
    # setuptools evaluates this module while building, where only text is needed.
    m = re.search(r'^version\s*=\s*"([^"]+)"', MANIFEST.read_text(encoding="utf-8"), re.MULTILINE)
    if not m:
        raise RuntimeError(f"{MANIFEST} has no version line")
    return m.group(1)


__version__ = _read_version()
