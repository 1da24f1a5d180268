"""What the running Blender lacks for Inhabit, in one sentence (bpy-free).

Checked before anything else registers: a zip built for another Python
(``build_info.json``, written by build_addon.py), a Blender without numpy
(distribution builds leave it out) or a pyzmq that does not load. With a
problem, the add-on registers only a panel that shows the sentence.
"""
from __future__ import annotations

import json
import os
import sys

BUILD_INFO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_info.json")
INSTALL_HOW = "Edit > Preferences > Get Extensions > Install from Disk"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def _serves(entry: dict, running: tuple[int, int]) -> bool:
    low = _version_tuple(entry["python_min"])
    high = entry.get("python_max")
    return running >= low and (high is None or running <= _version_tuple(high))


def wrong_python(info: dict, running: tuple[int, int]) -> str | None:
    """The sentence for a zip built for another Python, naming the file to take."""
    if _serves(info, running):
        return None
    this = ".".join(map(str, running))
    other = next((f["name"] for f in info.get("files", {}).values() if _serves(f, running)), None)
    built = info["python_min"] + (f" to {info['python_max']}" if info.get("python_max") else " or later")
    fix = f"install {other} instead ({INSTALL_HOW})" if other else "no Inhabit file serves it yet"
    return f"This Inhabit file is built for Python {built} but this Blender runs Python {this}: {fix}."


def problem() -> str | None:
    """One sentence saying what is missing, or None when Inhabit can run."""
    running = sys.version_info[:2]
    if os.path.exists(BUILD_INFO):
        try:
            with open(BUILD_INFO, encoding="utf-8") as fh:
                info = json.load(fh)
            sentence = wrong_python(info, running)
        except (OSError, ValueError, KeyError, TypeError):
            sentence = None  # an unreadable note must not stop an add-on that may well work
        if sentence:
            return sentence
    py = ".".join(map(str, running))
    try:
        import numpy  # noqa: F401
    except ImportError:
        return (f"This Blender has no numpy, which Inhabit needs: install numpy for its Python {py} "
                "(on Debian and Ubuntu: apt install python3-numpy) and restart Blender.")
    try:
        import zmq  # noqa: F401
    except ImportError as exc:
        return (f"pyzmq did not load in this Blender's Python {py} ({exc}): remove Inhabit and install the "
                f"Inhabit file for this Blender again ({INSTALL_HOW}).")
    return None
