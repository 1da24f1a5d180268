"""One line per server/job event on stderr: ``inhabit HH:MM:SS event key=value ...``."""
from __future__ import annotations

import sys
import threading
import time

_lock = threading.Lock()


def event(_event: str, **fields) -> None:
    parts = [f"inhabit {time.strftime('%H:%M:%S')} {_event}"]
    parts += [f"{k}={v}" for k, v in fields.items() if v is not None and v != ""]
    with _lock:
        print(" ".join(parts), file=sys.stderr, flush=True)
