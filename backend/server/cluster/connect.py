"""Joining the Ray cluster for ``inhabit serve --cluster``, and the checks made before listening.

Each problem is one sentence naming the fix (``inhabit serve`` prints it and
exits 2): Ray not installed, a cluster address nobody answers at, a cluster
without GPU slots, inhabit or the engines' weights missing on a GPU node.
"""
from __future__ import annotations

import os
import socket

from .ray_import import EXTRA, ClusterError, ray as import_ray

LOCAL = "local"
# A job handed to an actor (its reference image) goes inline in the Ray call up to this size instead of
# through Ray's object store (a third of the time per hop for megabytes; frames and results do not go
# through Ray at all: see dataplane.py).
INLINE_BYTES = 16 * 2**20
INLINE = {"RAY_max_direct_call_object_size": str(INLINE_BYTES)}
RAY_PORT = 6379
ANSWER_TIMEOUT_S = 3.0


def join(address: str, resource: str, *, local_slots: int = 1):
    """Connect this process to the cluster (or start a one-machine one for ``local``); returns ``ray``."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    os.environ.update(INLINE)   # read by this process's Ray core worker at init; the actors get it below
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
             "runtime_env": {"env_vars": dict(INLINE)}}
    if address == LOCAL:
        # A one-machine cluster: its GPUs, or ``local_slots`` of a custom slot resource.
        extra = {} if resource in ("GPU", "CPU") else {"resources": {resource: local_slots}}
        ray.init(**quiet, **extra)
        return ray
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=ANSWER_TIMEOUT_S).close()
    except OSError:
        raise ClusterError(f"--cluster {address}: no Ray cluster answers there; start its head node with "
                           f"`ray start --head --port {port}` and give that host:port, or use --cluster local"
                           ) from None
    ray.init(address=f"{host}:{port}", **quiet)
    return ray


def _host_port(address: str) -> tuple[str, int]:
    text = address.removeprefix("ray://").removeprefix("tcp://")
    host, _, port = text.rpartition(":")
    if not host:
        return text, RAY_PORT
    if not port.isdigit():
        raise ClusterError(f"--cluster {address!r} is not host:port (e.g. head-node:{RAY_PORT}) or 'local'")
    return host, int(port)


def slot_nodes(ray, resource: str) -> list[dict]:
    """The live nodes offering the slot resource."""
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(resource, 0) >= 1]


def check(ray, address: str, resource: str, engine_specs: dict, weights: str | None) -> None:
    """ClusterError unless the cluster has slots and every slot node can run the engines."""
    nodes = slot_nodes(ray, resource)
    if not nodes:
        how = ("`ray start --address HEAD:PORT --num-gpus N` on each GPU node" if resource == "GPU" else
               f"`ray start --address HEAD:PORT --resources '{{\"{resource}\": N}}'` on each GPU node")
        raise ClusterError(f"--cluster {address} has no GPU slots (no node offers resource {resource!r}): start "
                           f"the GPU nodes with {how}, or name their slot resource with --cluster-resource")
    probe = ray.remote(num_cpus=0, max_retries=0)(node_problem)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    refs = {n["NodeManagerAddress"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(engine_specs, weights) for n in nodes}
    for node, ref in refs.items():
        try:
            problem = ray.get(ref, timeout=120)
        except Exception as exc:
            raise ClusterError(f"cluster node {node} cannot run inhabit ({type(exc).__name__}): install the same "
                               f"version there with pip install '{EXTRA}'") from None
        if problem:
            raise ClusterError(f"cluster node {node}: {problem}")


def node_problem(engine_specs: dict, weights: str | None) -> str | None:
    """Run on a slot node: what keeps it from running the engines (None: nothing)."""
    from backend.server.engines import registry
    if weights and not os.path.isdir(weights):
        return (f"--weights {weights} is not on this node: copy or mount the weights folder at the same path on "
                "every GPU node")
    for spec in engine_specs.values():
        try:
            cls = registry.load_spec(spec)
        except registry.EngineNotFound as exc:
            return f"{exc}: install the same inhabit version on every GPU node"
        check = getattr(cls, "weights_problem", None)
        problem = check(weights) if (check and weights) else None
        if problem:
            return f"--weights for engine {cls.name!r} on this node: {problem}"
    return None


def prepare(config, address: str, resource: str, engines, keep_warm_s: float = 600.0) -> None:
    """Join the cluster, check it, and set ``config.cluster`` (and ``config.workers``: jobs relayed at once,
    one per slot unless --workers was given). ClusterError says what is wrong."""
    from .pool import SlotSettings
    specs = {cls.name: f"{cls.__module__}:{cls.__qualname__}" for cls in engines}
    ray = join(address, resource, local_slots=max(1, config.workers))
    check(ray, address, resource, specs, config.weights)
    slots = sum(int(n["Resources"][resource]) for n in slot_nodes(ray, resource))
    config.cluster = SlotSettings(resource=resource, weights=config.weights, limits=dict(config.limits),
                                  eager_load=config.eager_load, engine_specs=specs,
                                  engine_options=dict(getattr(config, "engine_options", None) or {}),
                                  keep_warm_s=keep_warm_s)
    config.workers = max(config.workers, slots)


def task_launcher(address: str):
    """For batch commands: join the cluster and return ``launch(module_args, env, log_path)`` (a Ray task)."""
    from .tasks import RemoteProcess
    ray = join(address, "CPU")
    return lambda args, env, log_path: RemoteProcess(ray, args, env, log_path)
