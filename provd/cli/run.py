"""``provd run``: the daemon."""

from __future__ import annotations

import argparse

import attrs
import structlog
import trio

from .. import logs
from ..actors.daemon import Daemon
from ..config import LOG_LEVELS
from .common import add_config_argument, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the daemon (systemd's ExecStart)")
    add_config_argument(parser)
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="overrides log.level of the config file (until the next reload)",
    )
    parser.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args)
    if config is None:
        return 2
    if args.log_level:
        config = attrs.evolve(config, log=attrs.evolve(config.log, level=args.log_level))
    logs.configure(config.log.level, fmt=config.log.format)
    log = structlog.get_logger("provd.daemon")
    try:
        trio.run(Daemon(config).run)
    except OSError as exc:
        log.error("daemon.start_failed", error=f"{exc.strerror or exc}")
        return 1
    except KeyboardInterrupt:
        pass
    return 0
