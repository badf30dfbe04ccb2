"""Helpers shared by the operator commands."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tomllib
from pathlib import Path

from ..config import SYSTEM_CONFIG, Config, ConfigError, default_config_path

CONFIG_HELP = (
    f"provd config file, accepted before or after the command (default: $PROVD_CONFIG, "
    f"else {SYSTEM_CONFIG} when it exists, else the embedded laptop defaults)"
)


def add_config_argument(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--config`` on the top parser (default None) and on every subcommand parser
    (default SUPPRESS, so a value given before the subcommand is not reset by it): one
    option accepted anywhere on the line."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None if top else argparse.SUPPRESS,
        help=CONFIG_HELP,
    )


def load_config(args: argparse.Namespace) -> Config | None:
    """The config, or None after printing why it was refused."""
    try:
        return Config.load(getattr(args, "config", None))
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


class NoDatabase(Exception):
    """The store does not exist (yet): nothing to read."""


def open_readonly(config: Config):
    """The daemon's database opened read-only: never creates the file or its directory.

    Raises:
        NoDatabase: there is no database at ``store.path`` (the message says where and
            which config named it).
    """
    from ..store.database import Database

    path = config.store.path
    if not os.path.exists(path):
        source = config.source or "the embedded defaults"
        raise NoDatabase(
            f"no database at {os.path.abspath(path)} (store.path from {source}); "
            "has `provd run` been started with this config? Give --config PATH"
        )
    try:
        return Database.open_readonly(path)
    except sqlite3.Error as exc:
        raise NoDatabase(f"cannot read the database at {path}: {exc}") from None


def control_socket_of(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The daemon's control socket even when its config file no longer validates (an
    operator reloading a broken edit must still reach the daemon to hear why): ``(socket,
    None)``, or ``(None, why)`` when the file cannot even be parsed."""
    try:
        return Config.load(getattr(args, "config", None)).control_socket, None
    except ConfigError as exc:
        refusal = str(exc)
    path = getattr(args, "config", None) or default_config_path()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8")) if path else {}
        control = raw.get("control", {}).get("socket") or ""
        store = raw.get("store", {}).get("path") or "provd.db"
        if not isinstance(control, str) or not isinstance(store, str):
            return None, refusal
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return None, refusal
    return control or str(Path(store).with_suffix(".sock")), None
