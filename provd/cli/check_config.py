"""``provd check-config [FILE]``: validate a config file the way the daemon would load it,
without starting anything. Exit 0 when it would be accepted (warnings on stderr), 2 when
not (the message names the key)."""

from __future__ import annotations

import argparse
import os
import sys

from ..config import Config, ConfigError, default_config_path, password_warnings
from .common import add_config_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-config", help="validate a config file without starting the daemon"
    )
    add_config_argument(parser)
    parser.add_argument("file", nargs="?", help="file to check (default: as --config)")
    parser.set_defaults(handler=cmd_check_config)


def _file_problems(config: Config) -> list[str]:
    """Files the config names that the daemon could not open (checked as this user)."""
    problems = []
    for key in ("appservice.tls_cert", "appservice.tls_key", "phones.tls_cert", "phones.tls_key"):
        section, name = key.split(".")
        path = getattr(getattr(config, section), name)
        if path.startswith("/run/credentials/"):
            continue  # systemd's LoadCredential= puts it there only for the running unit
        if path and not os.access(path, os.R_OK):
            problems.append(f"{key}: cannot read {path}")
    templates = config.phones.templates
    if templates and not os.path.isdir(templates):
        problems.append(f"phones.templates: no directory {templates}")
    return problems


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.file or getattr(args, "config", None) or default_config_path()
    try:
        config = Config.load(path) if path else Config()
    except ConfigError as exc:
        print(f"provd: config refused: {exc}", file=sys.stderr)
        return 2
    problems = _file_problems(config)
    for problem in problems:
        print(f"provd: {problem}", file=sys.stderr)
    if problems:
        return 2
    for warning in password_warnings(config):
        print(f"provd: warning: {warning}", file=sys.stderr)
    print(f"{path or '(embedded defaults)'}: ok")
    return 0
