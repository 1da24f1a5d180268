"""Run a real ``inhabit serve`` subprocess for tests.

    with start_server(engines=("tests.engines_for_tests:EchoEngine",)) as srv:
        Client(srv.address) ...

A thin layer over the product's own launcher (``backend.cli.local_server``):
free loopback port, wait until INFO answers, SIGTERM then kill afterwards.
``srv.log()`` returns the server's output so far.
"""
from __future__ import annotations

import contextlib
import time

from backend.cli.local_server import REPO_ROOT, LocalServer, free_loopback_port as free_port  # noqa: F401


class ServerProcess(LocalServer):
    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"server log never showed {text!r}; log:\n{self.log()}")


@contextlib.contextmanager
def start_server(engines=("tests.engines_for_tests:EchoEngine",), *, weights=None, extra_args=(), env=None,
                 startup_timeout: float = 20.0, address: str | None = None, wait=True):
    srv = ServerProcess(engines, weights=weights, extra_args=extra_args, address=address, env=env).start()
    try:
        if wait:
            srv.wait_ready(startup_timeout)
        yield srv
    finally:
        srv.stop()
        srv.remove_log()
