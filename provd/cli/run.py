"""``provd run``: the daemon.

Start-up and core failures end in exactly one log line with a syslog priority (``<2>`` for
a core failure, ``<3>`` for a refused config) naming the key and the path or address, and
a distinct exit status (:class:`provd.exits.ExitStatus`, documented in README
"Operations"). The traceback is logged only at log level debug.
"""

from __future__ import annotations

import argparse
import sys

import attrs
import structlog
import trio

from .. import logs
from ..actors.daemon import Daemon
from ..config import LOG_LEVELS, Config, ConfigError
from ..exits import ExitStatus, find_core_failure
from ..phones import TemplateCheckError
from .common import add_config_argument


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
    log = structlog.get_logger("provd.daemon")
    try:
        config = Config.load(getattr(args, "config", None))
    except ConfigError as exc:
        # Logging is not configured yet (the config says how): one journald-style line.
        line = structlog.processors.LogfmtRenderer(key_order=["event"])(
            None, "error", {"event": "daemon.config_refused", "error": str(exc)}
        )
        print(f"<3>{line}", file=sys.stderr, flush=True)
        return ExitStatus.CONFIG
    if args.log_level:
        config = attrs.evolve(config, log=attrs.evolve(config.log, level=args.log_level))
    logs.configure(config.log.level, fmt=config.log.format)
    try:
        trio.run(Daemon(config).run)
    except TemplateCheckError as exc:
        # A broken operator template is a refused config: naming the file and the error.
        log.error("daemon.config_refused", template=exc.template, error=exc.message)
        return ExitStatus.CONFIG
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        failure = find_core_failure(exc)
        if failure is not None:
            log.critical(failure.event, **failure.fields)
            log.debug("daemon.failure_traceback", exc_info=exc)
            return failure.status
        log.critical(
            "daemon.crashed",
            error=f"{type(exc).__name__}: {exc}",
            hint="log.level = debug logs the traceback",
        )
        log.debug("daemon.crash_traceback", exc_info=exc)
        return ExitStatus.INTERNAL
    return ExitStatus.OK
