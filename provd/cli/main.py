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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only``, the top options and that one command's parser
    (importing a command's module imports what it runs: the simulator, the daemon...)."""
    parser = argparse.ArgumentParser(
        prog="provd",
        description="Provision third-party SIP phones on an innovaphone PBX (an App Service).",
    )
    parser.add_argument("--version", action="version", version=f"provd {__version__}")
    add_config_argument(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command named on the line (the first word that is not an option or the value
    of ``--config``), when it is one of :data:`COMMANDS`; else None."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            name = word.replace("-", "_")  # check-config
            return name if name in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Only the named command's module is imported: ``provd run`` starts without loading
    # the simulator, the demo and the operator commands (issue 14: a restarted daemon's
    # first phone waits for its imports). No command (help, a typo): the whole parser.
    parser = build_parser(command_of(argv))
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
