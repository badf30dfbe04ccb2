"""``provd``: one parser, one ``main(argv) -> int`` that tests can call."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__

#: Modules under provd.cli that add a subcommand: each has ``register(subparsers)``, which
#: adds its parser and sets ``handler`` (``args -> int``) as a default.
COMMANDS = ("run", "sim", "demo", "phones", "status", "render")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provd",
        description="Provision third-party SIP phones on an innovaphone PBX (an App Service).",
    )
    parser.add_argument("--version", action="version", version=f"provd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
