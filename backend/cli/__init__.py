"""``inhabit``: one console command, subcommands in ``backend/cli/commands/<name>.py``.

Each command module exposes ``add_parser(subparsers)`` and ``run(args) -> int``
and must be cheap to import (no torch, no bpy at import time). A command whose
module does not exist (yet) is simply absent from the help.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import re
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


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes are one sentence and exit 2, like every other bad input
    (argparse's own error prints the whole usage first). Subcommand parsers
    are of this class too (argparse makes them of their parent's class)."""

    def error(self, message: str):
        hint = ""
        if "expected one argument" in message:
            hint = "; a value that starts with '-' goes after '=', e.g. --frames=-3-2"
        self.exit(2, f"{self.prog}: {message}{hint} (see {self.prog} --help).\n")


# Options whose values may start with '-' (negative scene frames): `--frames -3-2`
# is read as `--frames=-3-2` rather than as an unknown option.
_DASH_VALUES = re.compile(r"-\d+(\s*[-:]\s*-?\d+)?")


def _join_dash_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--frames" and _DASH_VALUES.fullmatch(arg):
            out[-1] = f"--frames={arg}"
        else:
            out.append(arg)
    return out


def build_parser(found) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="inhabit", description="Inhabit: put an animated character into a Blender "
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
    args = parser.parse_args(_join_dash_values(argv))
    from blender_addon.core import logs
    logs.to_stderr(logging.WARNING)  # commands that narrate (serve) raise it to INFO
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(found[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
