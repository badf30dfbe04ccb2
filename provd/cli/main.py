"""``provd``: one parser, one ``main(argv) -> int`` that tests can call."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from .common import add_config_argument

#: Modules under provd.cli that add a subcommand: each has ``register(subparsers)``, which
#: adds its parser and sets ``handler`` (``args -> int``) as a default.
COMMANDS = (
    "run",
    "sim",
    "demo",
    "phones",
    "devices",
    "status",
    "render",
    "reload",
    "check_config",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provd",
        description="Provision third-party SIP phones on an innovaphone PBX (an App Service).",
    )
    parser.add_argument("--version", action="version", version=f"provd {__version__}")
    add_config_argument(parser, top=True)
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
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`provd phones show MAC | head`): no traceback. Point stdout
        # at /dev/null so the interpreter's final flush does not fail again, as the Python
        # docs advise (library/signal.html, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it
    sys.exit(status)
