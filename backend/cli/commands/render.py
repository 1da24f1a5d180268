"""``inhabit render``: run a whole shot headless against a server (CI, farms).

Opens the .blend, builds the shot from the arguments, drives the add-on's job
state machine with a blocking loop (``backend.blender.headless.run_shot``) and,
with ``--save-blend``, saves the file with the result strip on the sequencer
-- also when the job failed, the server was lost or the run was stopped, with
the frames received so far.

Without ``--server`` a private server for ``--engine`` (and ``--weights``)
runs on a free loopback port for the length of the shot. ``--resume``
continues the shot's latest take: frames on disk are kept, only missing ones
are generated. SIGINT, SIGTERM and SIGHUP (what farm managers send) cancel the
job on the server at once and keep every frame received.

Exit codes: 0 done, 1 job failed or server lost, 2 bad input, 130 / 143 / 129
stopped by SIGINT / SIGTERM / SIGHUP (128 + the signal's number).
"""
from __future__ import annotations

import os
import signal
import sys

# What a terminal and farm managers send to stop a task (Windows has no SIGHUP).
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def add_parser(subparsers):
    from backend.blender.shot_args import add_shot_arguments
    p = subparsers.add_parser("render", help="animate a shot headless against an Inhabit server",
                              description=__doc__, formatter_class=_RawDescription)
    add_shot_arguments(p)
    p.add_argument("--server", help="server address, host:port or tcp://host:port (default: start a private "
                                    "server for --engine on a free loopback port)")
    p.add_argument("--weights", help="weights folder for the private server (only without --server)")
    p.add_argument("--curve-server-key", metavar="FILE", help="the server's public key file (CurveZMQ; server.key)")
    p.add_argument("--curve-client-key", metavar="FILE", help="this client's secret key file (client.key_secret)")
    p.add_argument("--server-timeout", type=float, default=10.0, metavar="S",
                   help="seconds of server silence before it counts as lost (default %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the shot's latest take: keep its frames, generate only the missing ones")
    p.add_argument("--channel", type=int, help="sequencer channel (default: first free above existing strips)")
    p.add_argument("--save-blend", metavar="OUT.blend", help="save the .blend with the result strip")
    return p


def _RawDescription(prog):
    import argparse
    return argparse.RawDescriptionHelpFormatter(prog)


def say(text: str) -> None:
    print(f"inhabit render: {text}", file=sys.stderr, flush=True)


def run(args) -> int:
    stopped = {"signal": None}

    def on_signal(signum, _frame):
        stopped["signal"] = signum  # the loop tells the server to cancel and keeps received frames

    old = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        return _run(args, stopped)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run(args, stopped) -> int:
    from blender_addon.core.address import AddressError, normalize
    from backend.cli.blender_env import use_blender_caches
    use_blender_caches()   # before bpy loads
    from backend.blender.shot_args import open_blend, settings_from_args
    from blender_addon.core.settings import SetupError
    from blender_addon.session import key_options
    from blender_addon.shot import resolve_shot
    try:
        if args.server:
            args.server = normalize(args.server)
        elif args.curve_server_key or args.curve_client_key:
            raise SetupError("server", "--curve-server-key/--curve-client-key were given without --server: "
                                       "give the keyed server's address.")
        if not args.server_timeout > 0 or args.server_timeout == float("inf"):
            raise SetupError("server_timeout", f"--server-timeout must be a positive number of seconds, got "
                                               f"{args.server_timeout}.")
        if args.weights and args.server:
            raise SetupError("weights", "--weights is for the private server: drop it, or drop --server to start one.")
        scene = open_blend(args.blend, args.scene)
        settings = settings_from_args(args, scene)
        shot = resolve_shot(scene, settings)   # every check that needs no server, before one starts
        key_options(settings)
    except (SetupError, AddressError) as exc:
        say(getattr(exc, "message", None) or str(exc))
        return 2
    if stopped["signal"]:
        return _stopped_before_start(stopped["signal"])
    private = None
    try:
        if not args.server:
            private, code = _start_private_server(args)
            if private is None:
                return code
            settings.server = private.address
            if ":" in args.engine:  # package.module:Class: the job names the engine by the class's name
                from backend.server.engines import registry
                settings.engine = registry.load_spec(args.engine).name
        if stopped["signal"]:
            return _stopped_before_start(stopped["signal"])
        return _render(args, scene, shot, stopped)
    finally:
        if private is not None:
            private.stop()
            private.remove_log()


def _start_private_server(args):
    from backend.cli.local_server import LocalServer
    if args.weights and not os.path.isdir(args.weights):
        say(f"--weights {args.weights!r} is not a folder: give the folder `inhabit weights convert` wrote.")
        return None, 2
    # Its own session: a Ctrl+C or a farm's signal to our process group reaches
    # us, and we stop the job and then the server in order.
    weights = os.path.abspath(args.weights) if args.weights else None  # the server runs from the repository root
    srv = LocalServer([args.engine], weights=weights, new_session=True).start()
    say(f"started a private server for engine {args.engine!r} at {srv.address}")
    try:
        srv.wait_ready(timeout=120.0)
    except RuntimeError:
        code = srv.stop()
        lines = [ln for ln in srv.log().splitlines() if ln.strip()]
        srv.remove_log()
        reason = lines[-1] if lines else f"it exited with code {code}"
        say(f"the private server did not start: {reason}")
        return None, 2 if code == 2 else 1  # `inhabit serve` exits 2 on a bad engine or weights folder
    return srv, 0


def _stopped_before_start(signum) -> int:
    say(f"stopped by {signal.Signals(signum).name} before the job started; nothing was generated")
    return 128 + signum


def _render(args, scene, shot, stopped) -> int:
    from blender_addon.core.settings import SetupError
    from backend.blender.headless import ShotFailed, run_shot

    def report(p):
        say(p.text())

    settings = shot.settings
    client_options = {"heartbeat_timeout": args.server_timeout, "timeout": min(10.0, args.server_timeout)}
    try:
        result = run_shot(scene, shot, progress=report, should_cancel=lambda: stopped["signal"] is not None,
                          client_options=client_options, resume_take=args.resume, on_plan=say)
    except SetupError as exc:
        say(exc.message)
        return 2
    except ShotFailed as exc:
        saved = _save_blend(args)
        if stopped["signal"]:  # the signal reached the server too (a process group): still a stop, not a failure
            return _stopped(stopped["signal"], exc.result, settings, saved)
        say(f"{exc} ({exc.result.frames} frames kept in {exc.result.take_dir}{saved}; "
            f"`inhabit render --resume` with the same arguments generates the rest)")
        return 1
    saved = _save_blend(args)
    if result.state == "cancelled":
        return _stopped(stopped["signal"] or signal.SIGINT, result, settings, saved)
    extra = ""
    if result.resumed:
        extra = f", {result.kept} kept from before"
        if result.regenerated:
            extra += f", {result.regenerated} regenerated"
    say(f"{result.state}: {result.frames} frames in {result.seconds:.1f}s -> {result.take_dir} "
        f"(strip {result.strip_name!r} on channel {result.channel}{extra}){saved}")
    return 0


def _stopped(signum, result, settings, saved) -> int:
    say(f"stopped by {signal.Signals(signum).name}: the server was told to cancel; {result.frames} of "
        f"{settings.frame_count} frames kept in {result.take_dir}{saved}")
    return 128 + signum


def _save_blend(args) -> str:
    """Save --save-blend (the strip holds whatever arrived); returns ', saved PATH' or ''."""
    if not args.save_blend:
        return ""
    import bpy
    path = os.path.abspath(args.save_blend)
    bpy.ops.wm.save_as_mainfile(filepath=path, copy=True)
    return f", saved {path}"
