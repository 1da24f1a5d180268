"""Logging: one standard ``logging`` logger per component, one line per event.

Components log under ``inhabit.<component>``: ``server`` (the socket loop and
workers), ``engine.<name>``, ``client``, ``addon`` (the job state machine and
panel), ``demo``, ``export``. Nothing here configures logging on import: a
library must not. Command-line entry points call ``to_stderr()``; inside
Blender the add-on's messages go wherever Blender's logging goes.

``event("done", job=..., frames=8)`` writes ``done job=... frames=8``; with the
stderr handler a line reads ``inhabit 12:34:56 done job=... frames=8``, the
format the server's log always had (and the tests read).
"""
from __future__ import annotations

import logging
import sys

ROOT = "inhabit"
LINE_FORMAT = "inhabit %(asctime)s %(message)s"
TIME_FORMAT = "%H:%M:%S"


def get(component: str) -> logging.Logger:
    return logging.getLogger(f"{ROOT}.{component}")


# A value longer than this is cut (a client's 3 MB name must not become a 3 MB line).
MAX_VALUE_CHARS = 300


def value_text(value) -> str:
    """One field's text: at most MAX_VALUE_CHARS characters, control characters escaped,
    so a value never breaks its line or hides what follows."""
    text = str(value)
    cut = len(text) - MAX_VALUE_CHARS
    if cut > 0:
        text = text[:MAX_VALUE_CHARS]
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text + (f"...(+{cut} chars)" if cut > 0 else "")


def event(logger: logging.Logger, name: str, /, level: int = logging.INFO, **fields) -> None:
    """Log one event as ``name key=value ...`` (fields that are None or empty are left out;
    values are cut and escaped by ``value_text``)."""
    if logger.isEnabledFor(level):
        parts = [name] + [f"{k}={value_text(v)}" for k, v in fields.items() if v is not None and v != ""]
        logger.log(level, " ".join(parts))


def to_stderr(level: int = logging.INFO) -> None:
    """Send every ``inhabit.*`` logger to stderr, one flushed line per event (idempotent)."""
    root = logging.getLogger(ROOT)
    if not any(getattr(h, "_inhabit", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LINE_FORMAT, TIME_FORMAT))
        handler._inhabit = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
