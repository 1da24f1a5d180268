"""How one ``inhabit serve`` is set up: address, devices, workers, limits."""
from __future__ import annotations

from dataclasses import dataclass, field

from blender_addon.core import protocol


@dataclass
class ServerConfig:
    bind: str = protocol.DEFAULT_ADDRESS
    device: str = "cpu"
    weights: str | None = None
    workers: int = 1                   # jobs run at once, each on its own worker thread
    gpus: int = 0                      # CUDA devices seen; workers are spread over them
    eager_load: bool = False
    limits: dict = field(default_factory=lambda: dict(protocol.DEFAULT_LIMITS))
    max_queue: int = 64                # open jobs (running, queued or receiving) held at most
    # {engine name: {option: value}}: each engine's server_options, checked and
    # defaulted by backend.server.engines.options.resolve (`inhabit serve --engine-option`).
    engine_options: dict = field(default_factory=dict)

    def worker_device(self, n: int) -> str:
        """Worker n's device: its own GPU while there are enough (cuda:0, cuda:1, ...),
        then round robin; every worker on "cpu" otherwise."""
        if self.device == "cuda" and self.gpus > 0:
            return f"cuda:{n % self.gpus}"
        return self.device
