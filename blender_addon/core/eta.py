"""Remaining-time estimates and how they are written, for every progress display
(the server's PROGRESS, the panel, ``inhabit render`` and the demo's bar)."""
from __future__ import annotations


def remaining_seconds(elapsed: float, fraction: float) -> float | None:
    """Seconds left at a constant rate, ``elapsed`` seconds after ``fraction`` of the
    work began; None before any progress (no rate to extrapolate yet)."""
    if fraction <= 0.0:
        return None
    return max(0.0, elapsed * (1.0 - min(1.0, fraction)) / fraction)


def format_eta(seconds: float) -> str:
    """``ETA m:ss`` (minutes grow past 59: long shots stay readable)."""
    s = int(max(0.0, seconds))
    return f"ETA {s // 60}:{s % 60:02d}"
