"""A one-line terminal progress bar (stage, count, ETA) on stderr."""
from __future__ import annotations

import sys
import time

from blender_addon.core.eta import format_eta, remaining_seconds


class ProgressBar:
    def __init__(self, stream=None, width: int = 28):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stage = None
        self.stage_t0 = 0.0
        self.last_line = 0.0
        self.last_print = ""

    def update(self, stage: str, done: int, total: int, detail: str = "", eta_s: float | None = None):
        now = time.monotonic()
        if stage != self.stage:
            if self.stage is not None and self.tty:
                self.stream.write("\n")
            self.stage, self.stage_t0 = stage, now
        if eta_s is None and done > 0 and total > done:
            eta_s = remaining_seconds(now - self.stage_t0, done / total)
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        fill = int(round(frac * self.width))
        eta = f" {format_eta(eta_s)}" if eta_s is not None and done < total else ""
        bar = f"[{'#' * fill}{'.' * (self.width - fill)}]"
        line = f"{bar} {stage:<13} {done}/{total}{eta}" + (f"  {detail}" if detail else "")
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self.last_print)))
            self.stream.flush()
        elif done in (0, total) or now - self.last_line > 5.0:
            # Logs (CI, pytest): a line now and then, not a carriage-return storm.
            self.stream.write(line + "\n")
            self.last_line = now
        self.last_print = line

    def close(self):
        if self.tty and self.stage is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.stage = None
