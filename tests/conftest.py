"""Test-session setup shared by every test module.

Blender writes config and caches into the home directory unless these are set
before ``import bpy``; the hub variables make any accidental download fail
loudly instead of reaching for the network.
"""
import os
import sys
import tempfile
from pathlib import Path

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
