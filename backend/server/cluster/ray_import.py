"""Ray, imported only where ``--cluster`` was asked for."""
from __future__ import annotations

EXTRA = "inhabit[cluster]"


class ClusterError(RuntimeError):
    """A cluster problem told to the user in one sentence (``inhabit serve`` exits 2 with it)."""


def ray():
    """The ``ray`` module, or ClusterError saying which extra installs it."""
    try:
        import ray as ray_module
    except ImportError:
        raise ClusterError(f"--cluster needs Ray, which is not installed: pip install '{EXTRA}' "
                           "(on the front end and on every node of the cluster)") from None
    return ray_module
