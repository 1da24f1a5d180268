"""``inhabit serve``: run the job server (loopback by default).

Engines are imported here (their modules are light by contract) but loaded
-- weights, torch -- only when a job first needs them, unless --eager-load.
"""
from __future__ import annotations

import os
import sys

DEFAULT_ENGINES = ("preview", "aa2")


def add_parser(subparsers):
    from blender_addon.core import protocol
    lim = protocol.DEFAULT_LIMITS
    p = subparsers.add_parser("serve", help="run the generation server", description=__doc__)
    p.add_argument("--bind", default=protocol.DEFAULT_ADDRESS, help="ZeroMQ endpoint (default %(default)s)")
    p.add_argument("--engine", action="append", metavar="NAME",
                   help="engine name or package.module:Class; repeatable (default: every built-in that imports)")
    p.add_argument("--weights", help="local weights directory handed to engines")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", "--jobs", dest="workers", type=int, default=None,
                   help="worker threads, i.e. jobs run at once, each with its own engine instances; with CUDA "
                        "worker k uses cuda:k (round robin past the GPU count) (default: 1 per CUDA GPU, 1 on CPU; "
                        "--jobs is the old name)")
    p.add_argument("--memory", default=None, choices=("auto", "full", "model-offload", "group-offload", "sequential"),
                   help="memory tier of engines that have tiers (wan-animate; default auto: chosen from free VRAM)")
    p.add_argument("--eager-load", action="store_true", help="load engines at start-up instead of on first job")
    p.add_argument("--max-queue", type=int, default=64, help="open jobs held at most (default %(default)s)")
    p.add_argument("--heartbeat-timeout", type=float, default=lim["heartbeat_timeout_s"],
                   help="seconds of client silence before its jobs are cancelled (default %(default)s)")
    p.add_argument("--max-message-bytes", type=int, default=lim["max_message_bytes"])
    p.add_argument("--max-frames", type=int, default=lim["max_frames"])
    p.add_argument("--max-width", type=int, default=lim["max_width"])
    p.add_argument("--max-height", type=int, default=lim["max_height"])
    p.add_argument("--cluster", metavar="ADDRESS|local",
                   help="run jobs on a Ray cluster (head host:port, or 'local' for this machine): one warm engine "
                        "per GPU slot on any node, same address and protocol for clients (pip install "
                        "'inhabit[cluster]'; docs/farm.md)")
    p.add_argument("--cluster-resource", default="GPU", metavar="NAME",
                   help="the Ray resource one engine actor holds: GPU (default), or a custom resource naming GPU "
                        "slots")
    p.add_argument("--cluster-keep-warm", type=float, default=600.0, metavar="S",
                   help="with --cluster: seconds an idle engine keeps its GPU slot before giving it back to the "
                        "cluster (default %(default)s)")
    p.add_argument("--curve-secret-key", metavar="FILE", help="server secret key file (needed off loopback)")
    p.add_argument("--allow-client-key", metavar="FILE", nargs="+", action="extend", default=[],
                   help="public key file(s) of clients allowed in (needed off loopback)")
    return p


def detect_device(choice: str) -> tuple[str, int]:
    """(device, gpu count) without importing torch: the NVIDIA driver lists GPUs in /proc."""
    gpus = 0
    root = "/proc/driver/nvidia/gpus"
    if os.path.isdir(root):
        gpus = len(os.listdir(root))
    if choice == "cuda" and not gpus:
        raise SystemExit("inhabit serve: --device cuda but no NVIDIA GPU is visible")
    if choice == "auto":
        choice = "cuda" if gpus else "cpu"
    return choice, gpus


def run(args) -> int:
    from backend.server.engines import registry
    from backend.server import log, security
    from backend.server.app import Server, ServerConfig, main_loop
    from blender_addon.core import logs, protocol

    logs.to_stderr()
    device, gpus = detect_device(args.device)
    engines = []
    for spec in args.engine or DEFAULT_ENGINES:
        try:
            engines.append(registry.load_spec(spec))
        except registry.EngineNotFound as exc:
            if args.engine:  # asked for by name: refuse to start without it
                print(f"inhabit serve: {exc}", file=sys.stderr)
                return 1
            log.event("engine_skipped", engine=spec, reason=str(exc))
    if args.weights and not os.path.isdir(args.weights):
        print(f"inhabit serve: --weights {args.weights!r} is not a folder", file=sys.stderr)
        return 1
    for cls in [c for c in engines if c.needs_weights and not args.weights]:
        if args.engine:
            print(f"inhabit serve: engine {cls.name!r} needs weights: give --weights DIR "
                  "(`inhabit weights convert ...`, or `inhabit doctor --save-tiny DIR` for a tiny test model)",
                  file=sys.stderr)
            return 1
        log.event("engine_skipped", engine=cls.name, reason="no --weights given")
        engines.remove(cls)
    for cls in list(engines):
        check = getattr(cls, "weights_problem", None)
        problem = check(args.weights) if (check and args.weights) else None
        if problem:
            if args.engine:
                print(f"inhabit serve: --weights for engine {cls.name!r}: {problem}", file=sys.stderr)
                return 1
            log.event("engine_skipped", engine=cls.name, reason=problem)
            engines.remove(cls)
    if args.memory:
        os.environ["INHABIT_MEMORY"] = args.memory  # read by engines with memory tiers when they load
    if not engines:
        print("inhabit serve: no engine could be loaded; give --engine NAME", file=sys.stderr)
        return 1
    limits = dict(protocol.DEFAULT_LIMITS)
    limits.update(heartbeat_timeout_s=args.heartbeat_timeout, max_message_bytes=args.max_message_bytes,
                  max_frames=args.max_frames, max_width=args.max_width, max_height=args.max_height)
    config = ServerConfig(bind=args.bind, device=device, weights=args.weights,
                          workers=args.workers or max(1, gpus if device == "cuda" else 1), gpus=gpus,
                          eager_load=args.eager_load, limits=limits, max_queue=args.max_queue)
    if args.cluster:
        from backend.server.cluster.connect import prepare
        from backend.server.cluster.ray_import import ClusterError
        try:
            config.workers = args.workers or 0
            if args.cluster_keep_warm <= 0:
                raise ClusterError(f"--cluster-keep-warm must be more than 0 seconds, got {args.cluster_keep_warm:g}")
            prepare(config, args.cluster, args.cluster_resource, engines, keep_warm_s=args.cluster_keep_warm)
        except ClusterError as exc:
            print(f"inhabit serve: {exc}", file=sys.stderr)
            return 2

    def secure(ctx, sock):
        return security.secure(ctx, sock, args.bind, args.curve_secret_key, args.allow_client_key)
    try:
        security.is_local(args.bind)  # early, readable error for a malformed address
        from blender_addon.core.address import normalize
        config.bind = args.bind = normalize(args.bind)  # host:port -> tcp://host:port
        server = Server(engines, config, security=secure)
    except security.SecurityError as exc:
        print(f"inhabit serve: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import zmq
        if isinstance(exc, zmq.ZMQError):
            print(f"inhabit serve: cannot bind {args.bind}: {exc}", file=sys.stderr)
            return 1
        raise
    return main_loop(server)
