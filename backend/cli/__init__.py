"""``inhabit``: one console command, subcommands in ``backend/cli/commands/<name>.py``.

Each command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``
and must be cheap to import (no torch, no bpy at import time). A command whose
module does not exist (yet) is simply absent from the help.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = ("serve", "info", "keys", "doctor", "weights", "export", "render", "demo", "dataset", "train", "eval")


def _load_commands():
    found, broken = {}, {}
    for name in COMMANDS:
        modname = f"backend.cli.commands.{name}"
        try:
            found[name] = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name != modname:
                broken[name] = exc
        except Exception as exc:  # a broken command must not take the others down
            broken[name] = exc
    return found, broken


def build_parser(found) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inhabit", description="Inhabit: put an animated character into a Blender "
                                     "scene (diffusion server, tools).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in found.values():
        mod.add_parser(sub)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    found, broken = _load_commands()
    if argv and argv[0] in broken:
        print(f"inhabit: command {argv[0]!r} cannot load: {broken[argv[0]]}", file=sys.stderr)
        return 2
    parser = build_parser(found)
    args = parser.parse_args(argv)
    from blender_addon.core import logs
    logs.to_stderr(logging.WARNING)  # commands that narrate (serve) raise it to INFO
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(found[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
