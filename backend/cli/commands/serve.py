"""``inhabit serve``: run the job server (loopback by default).

Engines are imported here (their modules are light by contract) but loaded
-- weights, torch -- only when a job first needs them, unless --eager-load.
Everything given is checked before the server listens: a bad option, engine,
weights folder or key file is one sentence and exit 2, so no client ever
queues a job that can only fail.

Without --engine the server runs every built-in engine whose needs are met:
``preview`` always, and each engine with weights whose check accepts
--weights (the others are skipped with a log line saying why).
"""
from __future__ import annotations

import os
import sys

BAD_INPUT = 2


class BadServeInput(ValueError):
    """A command-line value `inhabit serve` cannot start with (one sentence)."""


def add_parser(subparsers):
    from blender_addon.core import protocol
    lim = protocol.DEFAULT_LIMITS
    p = subparsers.add_parser("serve", help="run the generation server", description=__doc__)
    p.add_argument("--bind", default=protocol.DEFAULT_ADDRESS, help="ZeroMQ endpoint (default %(default)s)")
    p.add_argument("--engine", action="append", metavar="NAME",
                   help="engine name or package.module:Class; repeatable (default: every built-in engine whose "
                        "needs are met: preview, and those whose weights check accepts --weights)")
    p.add_argument("--weights", help="local weights directory handed to engines")
    p.add_argument("--engine-option", action="append", default=[], metavar="NAME=VALUE",
                   help="a server-side engine option (memory tier, dtype, ...; each engine lists its own under "
                        "server_options in `inhabit info`); repeatable")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", "--jobs", dest="workers", type=int, default=None,
                   help="worker threads, i.e. jobs run at once, each with its own engine instances; with CUDA "
                        "worker k uses cuda:k (round robin past the GPU count) (default: 1 per CUDA GPU, 1 on CPU; "
                        "--jobs is the old name)")
    p.add_argument("--eager-load", action="store_true", help="load engines at start-up instead of on first job")
    p.add_argument("--max-queue", type=int, default=64, help="open jobs held at most (default %(default)s)")
    p.add_argument("--heartbeat-timeout", type=float, default=lim["heartbeat_timeout_s"],
                   help="seconds of client silence before its jobs are cancelled (default %(default)s)")
    p.add_argument("--frame-timeout", type=float, default=lim["frame_timeout_s"],
                   help="seconds a running job may wait for its client's next frame before it gives its worker "
                        "back and fails (default %(default)s)")
    p.add_argument("--max-message-bytes", type=int, default=lim["max_message_bytes"])
    p.add_argument("--max-frames", type=int, default=lim["max_frames"])
    p.add_argument("--max-width", type=int, default=lim["max_width"])
    p.add_argument("--max-height", type=int, default=lim["max_height"])
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
        raise BadServeInput("--device cuda but no NVIDIA GPU is visible: use --device cpu or auto")
    if choice == "auto":
        choice = "cuda" if gpus else "cpu"
    return choice, gpus


def check_numbers(args) -> None:
    """Counts and durations that make no sense are refused, not served."""
    positive = {"--workers": args.workers, "--max-queue": args.max_queue, "--max-frames": args.max_frames,
                "--max-width": args.max_width, "--max-height": args.max_height,
                "--max-message-bytes": args.max_message_bytes}
    for flag, value in positive.items():
        if value is not None and value < 1:
            raise BadServeInput(f"{flag} must be at least 1, got {value}")
    for flag, seconds in (("--heartbeat-timeout", args.heartbeat_timeout), ("--frame-timeout", args.frame_timeout)):
        if not seconds > 0 or seconds == float("inf"):
            raise BadServeInput(f"{flag} must be a positive number of seconds, got {seconds}")


def choose_engines(specs, weights: str | None) -> list:
    """The engine classes to serve; BadServeInput for an engine asked for by name
    that cannot run with ``weights``. Default engines that cannot are skipped."""
    from backend.server.engines import registry
    from backend.server import log
    explicit = bool(specs)
    chosen = []
    for spec in specs or registry.BUILTIN:
        try:
            cls = registry.load_spec(spec)
        except registry.EngineNotFound as exc:
            if explicit:
                raise BadServeInput(f"--engine: {exc}") from None
            log.event("engine_skipped", engine=spec, reason=str(exc))
            continue
        problem = weights_problem(cls, weights)
        if problem and not explicit and not weights:
            problem = "no --weights given"
        if problem is None:
            chosen.append(cls)
        elif explicit:
            raise BadServeInput(problem)
        else:
            log.event("engine_skipped", engine=cls.name, reason=problem)
    if not chosen:
        raise BadServeInput("no engine can run with what was given: give --engine NAME (and --weights DIR for "
                            "engines with a model)")
    return chosen


def weights_problem(cls, weights: str | None) -> str | None:
    """Why engine ``cls`` cannot run with ``weights`` (the engine's own check), or None."""
    if not cls.needs_weights:
        return None
    if not weights:
        return (f"engine {cls.name!r} needs weights: give --weights DIR (`inhabit weights convert ...`, or "
                f"`inhabit doctor --engine {cls.name} --save-tiny DIR` for a tiny test model)")
    problem = cls.weights_problem(weights)
    if problem:
        return (f"--weights for engine {cls.name!r}: {problem.rstrip('.')} "
                f"(details: inhabit doctor --engine {cls.name} --weights DIR)")
    return None


def run(args) -> int:
    from backend.server.engines.options import OptionError, resolve
    from backend.server import security
    from backend.server.app import Server, ServerConfig, main_loop
    from blender_addon.core import logs, protocol
    from blender_addon.core.address import AddressError, normalize

    logs.to_stderr()
    try:
        check_numbers(args)
        device, gpus = detect_device(args.device)
        if args.weights and not os.path.isdir(args.weights):
            raise BadServeInput(f"--weights {args.weights!r} is not a folder: give the engine's weights folder")
        engines = choose_engines(args.engine, args.weights)
        options = resolve(engines, args.engine_option)
        bind = normalize(args.bind)  # host:port -> tcp://host:port
        security.is_local(bind)      # early, readable error for a malformed address
        security.check_key_files(args.curve_secret_key, args.allow_client_key)
    except (BadServeInput, OptionError, AddressError, security.SecurityError) as exc:
        print(f"inhabit serve: {str(exc).rstrip('.')}.", file=sys.stderr)
        return BAD_INPUT
    limits = dict(protocol.DEFAULT_LIMITS)
    limits.update(heartbeat_timeout_s=args.heartbeat_timeout, frame_timeout_s=args.frame_timeout,
                  max_message_bytes=args.max_message_bytes, max_frames=args.max_frames, max_width=args.max_width,
                  max_height=args.max_height)
    config = ServerConfig(bind=bind, device=device, weights=args.weights,
                          workers=args.workers or max(1, gpus if device == "cuda" else 1), gpus=gpus,
                          eager_load=args.eager_load, limits=limits, max_queue=args.max_queue,
                          engine_options=options)

    def secure(ctx, sock):
        return security.secure(ctx, sock, bind, args.curve_secret_key, args.allow_client_key)
    try:
        server = Server(engines, config, security=secure)
    except security.SecurityError as exc:
        print(f"inhabit serve: {str(exc).rstrip('.')}.", file=sys.stderr)
        return BAD_INPUT
    except Exception as exc:
        import zmq
        if isinstance(exc, zmq.ZMQError):
            print(f"inhabit serve: cannot bind {bind}: {exc}", file=sys.stderr)
            return 1
        raise
    return main_loop(server)
