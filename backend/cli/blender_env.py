"""Where headless Blender keeps its user resources and caches for our commands.

Blender (and Mesa under it) write config, extension indexes and shader caches
into the home folder unless told otherwise. Our commands send them to one
per-user cache folder, never into an output folder (a dataset or a demo folder
holds only outputs) and never into the user's own Blender configuration.
Folders a caller already chose through the environment are kept.
"""
from __future__ import annotations

import os

VARIABLES = (("BLENDER_USER_RESOURCES", "blender"), ("XDG_CACHE_HOME", "xdg"), ("MESA_SHADER_CACHE_DIR", "mesa"))


def cache_root() -> str:
    """``$XDG_CACHE_HOME/inhabit`` (``~/.cache/inhabit`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "inhabit")


def blender_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with every unset Blender cache variable pointed at ``cache_root()``."""
    out = dict(os.environ if env is None else env)
    root = cache_root()
    for var, sub in VARIABLES:
        out.setdefault(var, os.path.join(root, sub))
    return out


def use_blender_caches() -> None:
    """Set the variables in this process, before it imports bpy."""
    for var, value in blender_env().items():
        if var in dict(VARIABLES):
            os.environ.setdefault(var, value)
