"""Helpers shared by the operator commands."""

from __future__ import annotations

import argparse
import sys

from ..config import Config, ConfigError


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $PROVD_CONFIG, else the embedded defaults)",
    )


def load_config(args: argparse.Namespace) -> Config | None:
    """The config, or None after printing why it was refused."""
    try:
        return Config.load(args.config)
    except ConfigError as exc:
        print(f"provd: config refused: {exc}", file=sys.stderr)
        return None


def mask(secret: str) -> str:
    return "********" if secret else ""


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)
