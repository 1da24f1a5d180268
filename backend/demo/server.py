"""A private ``inhabit serve`` for the demo: a subprocess on a free loopback port."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """Start with ``with LocalServer(engine, weights) as srv:``; ``srv.address``
    is ready when the block starts (INFO answered), and the process is stopped
    (SIGTERM, then SIGKILL) when it ends."""

    def __init__(self, engine: str, weights: str | None = None, log_path: str | None = None):
        self.engine, self.weights, self.log_path = engine, weights, log_path
        self.address = f"tcp://127.0.0.1:{free_loopback_port()}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self):
        cmd = [sys.executable, "-m", "backend.cli", "serve", "--bind", self.address, "--engine", self.engine]
        if self.weights:
            cmd += ["--weights", self.weights]
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        from blender_addon.core.client import Client
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo server exited with code {self.proc.returncode} before answering"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                with Client(self.address, timeout=1.0) as c:
                    c.info(timeout=1.0)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the demo server at {self.address} did not answer within {timeout:g} s")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
            self._log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
