"""``inhabit render``: run a whole shot headless against a server (CI, farms).

Opens the .blend, builds the shot from the arguments, drives the add-on's job
state machine with a blocking loop (``blender_addon.headless.run_shot``) and,
with ``--save-blend``, saves the file with the result strip on the sequencer.
Exit codes: 0 done, 1 job failed, 2 bad input, 130 cancelled (Ctrl+C).
"""
from __future__ import annotations

import os
import signal
import sys


def add_parser(subparsers):
    from blender_addon.core import protocol
    from backend.blender.shot_args import add_shot_arguments
    p = subparsers.add_parser("render", help="animate a shot headless against an Inhabit server",
                              description=__doc__)
    add_shot_arguments(p)
    p.add_argument("--server", default=protocol.DEFAULT_ADDRESS, help=f"server address (default {protocol.DEFAULT_ADDRESS})")
    p.add_argument("--channel", type=int, help="sequencer channel (default: first free above existing strips)")
    p.add_argument("--save-blend", metavar="OUT.blend", help="save the .blend with the result strip")
    return p


def run(args) -> int:
    from backend.blender.shot_args import open_blend, settings_from_args
    from blender_addon.core.settings import SetupError
    cancel = {"asked": False}

    def on_sigint(*_):
        cancel["asked"] = True  # cancel cleanly: the loop tells the server and keeps received frames

    try:
        scene = open_blend(args.blend, args.scene)
        settings = settings_from_args(args, scene)
        from blender_addon.headless import ShotFailed, run_shot
    except SetupError as exc:
        print(f"inhabit render: {exc.message}", file=sys.stderr)
        return 2

    def report(p):
        print(f"inhabit render: {p.text()}", file=sys.stderr)

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = run_shot(scene, settings, progress=report, should_cancel=lambda: cancel["asked"])
    except SetupError as exc:
        print(f"inhabit render: {exc.message}", file=sys.stderr)
        return 2
    except ShotFailed as exc:
        print(f"inhabit render: {exc} ({exc.result.frames} frames kept in {exc.result.take_dir})", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, old)
    if args.save_blend:
        import bpy
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.save_blend), copy=True)
    print(f"inhabit render: {result.state}: {result.frames} frames in {result.seconds:.1f}s -> {result.take_dir} "
          f"(strip {result.strip_name!r} on channel {result.channel})", file=sys.stderr)
    return 130 if result.state == "cancelled" else 0
