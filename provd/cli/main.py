"""``provd``: one parser, one ``main(argv) -> int`` that tests can call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provd",
        description="Provision third-party SIP phones on an innovaphone PBX (an App Service).",
    )
    parser.add_argument("--version", action="version", version=f"provd {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
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
