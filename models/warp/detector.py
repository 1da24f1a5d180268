"""The optional pose detector that finds reference keypoints when a job sends none.

Kept apart from ``reference.py`` (which needs cv2) so the preview engine can
say whether it is installed, and how to install it, without importing anything.
"""
from __future__ import annotations

import importlib.util

MEDIAPIPE_PIN = "mediapipe==0.10.21"   # the "pose" extra of pyproject.toml


def installed() -> bool:
    """Whether mediapipe can be imported (find_spec looks without importing it)."""
    return importlib.util.find_spec("mediapipe") is not None
