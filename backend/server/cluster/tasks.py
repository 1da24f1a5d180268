"""Batch work spread over the cluster as Ray tasks: ``inhabit dataset make --cluster``.

A ``RemoteProcess`` is a Ray task that runs one command line (a headless
Blender worker) on whichever node has a free CPU, and looks to the caller
like a ``subprocess.Popen`` (``poll``, ``returncode``, ``terminate``,
``wait``, ``kill``), so the command's own loop -- progress bar, resume,
failure message -- stays the one that drives local processes. The output
folder must be the same path on every node (a shared file system); the worker
writes each item there atomically, so a lost node only loses items in flight,
which the next run renders.
"""
from __future__ import annotations

import os
import subprocess
import sys


def run_module(args: list, env: dict, log_path: str) -> int:
    """On a node: ``python -m ARGS`` with this node's Python, output appended to ``log_path``."""
    full_env = dict(os.environ)
    full_env.update(env)
    with open(log_path, "ab") as log:
        return subprocess.call([sys.executable, "-m", *args], env=full_env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)


class RemoteProcess:
    """A command run as a Ray task (one CPU), with the part of Popen's interface the commands use."""

    def __init__(self, ray, args: list, env: dict, log_path: str, cpus: float = 1.0):
        self.ray = ray
        self.returncode: int | None = None
        task = ray.remote(num_cpus=cpus, max_retries=0)(run_module)
        self.ref = task.remote(list(args), dict(env), log_path)

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _ = self.ray.wait([self.ref], timeout=0)
            if ready:
                try:
                    self.returncode = int(self.ray.get(self.ref))
                except self.ray.exceptions.RayError:   # the node was lost or the task cancelled
                    self.returncode = 1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self.ray.wait([self.ref], timeout=timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired("ray task", timeout or 0)
        return self.returncode

    def terminate(self) -> None:
        try:
            self.ray.cancel(self.ref, force=True)
        except Exception:  # already finished
            pass

    kill = terminate
