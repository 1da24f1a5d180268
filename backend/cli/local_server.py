"""Run a private ``inhabit serve`` as a subprocess on a loopback port.

One launcher for everything that needs its own server: ``inhabit demo`` and
the test suite. The server's stdout/stderr go to a log file so a failure to
start can be reported with the server's own words.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(address: str, engines, weights=None, extra_args=()) -> list[str]:
    cmd = [sys.executable, "-m", "backend.cli", "serve", "--bind", address]
    for e in engines:
        cmd += ["--engine", e]
    if weights:
        cmd += ["--weights", str(weights)]
    return cmd + [str(a) for a in extra_args]


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (Linux PR_SET_PDEATHSIG),
    so a private server never outlives a render killed with SIGKILL."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class LocalServer:
    """``start()`` launches, ``wait_ready()`` blocks until INFO answers,
    ``stop()`` sends SIGTERM (then SIGKILL) and returns the exit code.
    As a context manager it does all three. Without ``log_path`` the log is a
    temporary file, removed by ``stop()``."""

    def __init__(self, engines, *, weights=None, extra_args=(), address: str | None = None,
                 env: dict | None = None, log_path: str | None = None, new_session: bool = False):
        self.address = address or f"tcp://127.0.0.1:{free_loopback_port()}"
        self.command = serve_command(self.address, engines, weights, extra_args)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), self.env.get("PYTHONPATH")) if p)
        self.env.update(env or {})
        self._own_log = log_path is None
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix="inhabit-serve-", suffix=".log")
            os.close(fd)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        # Out of the caller's process group, so a signal to the group reaches the caller, which stops
        # the job and then the server in order; the server still ends if the caller is killed outright.
        self._new_session = new_session

    def start(self) -> "LocalServer":
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command, cwd=REPO_ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=self._new_session,
                                     preexec_fn=_end_with_parent if self._new_session and sys.platform == "linux"
                                     else None)
        return self

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout: float = 30.0) -> None:
        from blender_addon.core.client import Client, ServerUnreachable
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"inhabit serve exited with code {self.proc.returncode} before answering:\n"
                                   f"{self.log()}")
            with Client(self.address, timeout=0.5) as client:
                try:
                    client.info()
                    return
                except ServerUnreachable:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"inhabit serve at {self.address} did not answer within "
                                           f"{timeout:g} s:\n{self.log()}") from None

    def stop(self, timeout: float = 10.0) -> int | None:
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            code = self.proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def remove_log(self) -> None:
        if self._own_log:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)

    def __enter__(self) -> "LocalServer":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            self.remove_log()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.remove_log()
