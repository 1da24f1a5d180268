"""The server's events, one line each (``inhabit HH:MM:SS event key=value ...``),
through the ``inhabit.server`` logger; see ``blender_addon/core/logs.py``."""
from __future__ import annotations

from blender_addon.core import logs

logger = logs.get("server")


def event(_event: str, **fields) -> None:
    logs.event(logger, _event, **fields)
