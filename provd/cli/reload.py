"""``provd reload``: ask the running daemon to re-read its config file (the unit's
ExecReload). Exit 0 when the new config is in force, 1 when the daemon refused it (the
error names the key; the old config keeps running), 3 when no daemon runs."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..actors import control
from .common import add_config_argument, control_socket_of


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reload", help="re-read the config file in the running daemon (systemd's ExecReload)"
    )
    add_config_argument(parser)
    parser.set_defaults(handler=cmd_reload)


def cmd_reload(args: argparse.Namespace) -> int:
    socket_path, unreadable = control_socket_of(args)
    if socket_path is None:
        print(f"provd: reload refused: {unreadable}", file=sys.stderr)
        # Under systemd (ExecReload) tell the daemon anyway, so it records the refusal and
        # `provd status` shows it; systemd sets $MAINPID for ExecReload= (systemd.service(5)).
        main_pid = os.environ.get("MAINPID", "")
        if main_pid.isdigit():
            os.kill(int(main_pid), signal.SIGHUP)
        return 1
    answer = control.request(socket_path, "reload", timeout=30.0)
    if answer is None:
        print(f"provd: not running (no daemon at {socket_path})", file=sys.stderr)
        return 3
    if not answer.get("ok"):
        print(f"provd: reload refused: {answer.get('error')}", file=sys.stderr)
        return 1
    print(f"provd: reloaded {answer.get('source') or '(embedded defaults)'}")
    return 0
