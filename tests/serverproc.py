"""Run a real ``inhabit serve`` subprocess for tests.

    with start_server(engines=("tests.engines_for_tests:EchoEngine",)) as srv:
        Client(srv.address) ...

Picks a free loopback port, waits until INFO answers, and stops the server
afterwards (SIGTERM, then kill). ``srv.log()`` returns its stderr so far.
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

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, proc: subprocess.Popen, address: str, log_path: str):
        self.proc = proc
        self.address = address
        self.log_path = log_path

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"server log never showed {text!r}; log:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def serve_command(address: str, engines, weights=None, extra_args=()) -> list[str]:
    cmd = [sys.executable, "-m", "backend.cli", "serve", "--bind", address]
    for e in engines:
        cmd += ["--engine", e]
    if weights:
        cmd += ["--weights", str(weights)]
    return cmd + [str(a) for a in extra_args]


@contextlib.contextmanager
def start_server(engines=("tests.engines_for_tests:EchoEngine",), *, weights=None, extra_args=(), env=None,
                 startup_timeout: float = 20.0, address: str | None = None, wait=True):
    address = address or f"tcp://127.0.0.1:{free_port()}"
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH")) if p)
    full_env.update(env or {})
    fd, log_path = tempfile.mkstemp(prefix="inhabit-serve-", suffix=".log")
    log_file = os.fdopen(fd, "w")
    proc = subprocess.Popen(serve_command(address, engines, weights, extra_args), cwd=REPO_ROOT, env=full_env,
                            stdout=log_file, stderr=subprocess.STDOUT)
    srv = ServerProcess(proc, address, log_path)
    try:
        if wait:
            _wait_ready(srv, startup_timeout)
        yield srv
    finally:
        srv.stop()
        log_file.close()
        with contextlib.suppress(OSError):
            os.unlink(log_path)


def _wait_ready(srv: ServerProcess, timeout: float) -> None:
    from blender_addon.core.client import Client, ServerUnreachable
    deadline = time.monotonic() + timeout
    while True:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"inhabit serve exited with {srv.proc.returncode}:\n{srv.log()}")
        with Client(srv.address, timeout=0.5) as cl:
            try:
                cl.info()
                return
            except ServerUnreachable:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"inhabit serve did not answer within {timeout} s:\n{srv.log()}") from None
