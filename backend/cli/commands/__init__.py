"""Subcommands of ``inhabit``; each module: ``add_parser(subparsers)`` and ``run(args) -> int``."""
