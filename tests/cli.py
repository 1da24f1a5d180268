"""Run ``inhabit`` as a user does, in a subprocess of this checkout, and the
tiny weight folders the engine tests share (made once per test session)."""
from __future__ import annotations

import os
import subprocess
import sys

from backend.cli.local_server import REPO_ROOT


def inhabit(*args, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    """``inhabit ARGS...`` from the repository root; output captured as text."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "backend.cli", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def save_tiny(folder, engine: str = "aa2"):
    """``inhabit doctor --engine ENGINE --save-tiny FOLDER`` (its smoke run included); returns the folder."""
    proc = inhabit("doctor", "--engine", engine, "--save-tiny", folder, "--frames", "2", "--steps", "1", timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "s/frame" in proc.stdout and (folder / "model_index.json").exists(), proc.stdout
    return folder
