"""Reach the server without blocking Blender: INFO is fetched on a worker thread.

A dead address costs the client's whole timeout (3 s); on the main thread that
froze the window. ``Connection`` runs ``fetch_server_info`` on a thread and hands
the answer over through a queue; the main thread polls it (a GUI timer, or a
blocking wait in background mode, where nothing is drawn).
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from ..core import jobs
from ..core.settings import SetupError


class Connection:
    """One INFO request in flight; ``then(info, error)`` runs on the main thread when it ends."""

    def __init__(self, address: str, keys: dict, then: Callable[[dict | None, SetupError | None], None],
                 purpose: str):
        self.address = address
        self.purpose = purpose          # "test" or "animate": what the panel says is going on
        self.then = then
        self.started = time.monotonic()
        self._answer: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._fetch, args=(address, dict(keys)), name="inhabit-connect",
                                        daemon=True)
        self._thread.start()

    def _fetch(self, address: str, keys: dict) -> None:
        from ..session import fetch_server_info
        try:
            self._answer.put((fetch_server_info(address, **keys), None))
        except SetupError as exc:
            self._answer.put((None, exc))
        except Exception as exc:  # the thread must always answer
            self._answer.put((None, SetupError("server", jobs.describe_error(exc, address))))

    def poll(self, wait_s: float = 0.0) -> bool:
        """Run ``then`` if the answer is in (waiting up to ``wait_s``); True once it ran."""
        try:
            info, error = self._answer.get(timeout=wait_s) if wait_s > 0 else self._answer.get_nowait()
        except queue.Empty:
            return False
        self.then(info, error)
        return True
