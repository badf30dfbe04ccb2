"""``provd status``: ask the running daemon over its control socket."""

from __future__ import annotations

import argparse
import json

from ..actors import control
from .common import add_config_argument, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="state of the running daemon")
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    config = load_config(args)
    if config is None:
        return 2
    answer = control.request(config.control_socket, "status")
    if answer is None:
        print(f"provd: not running (no daemon at {config.control_socket})")
        return 3  # LSB: program is not running
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    states = ", ".join(f"{k} {v}" for k, v in sorted(answer["states"].items())) or "none"
    print(f"provd {answer['version']}, up {answer['uptime']:.0f} s")
    print(f"PBX sessions   {answer['pbx_sessions']}")
    print(f"Devices        {answer['devices_url'] or 'not announced yet'}")
    print(f"phones         {answer['phones']} ({states}); online {answer['online']}")
    print(f"actors         {answer['actors']}")
    if answer.get("actor_states"):
        by_state = ", ".join(f"{n} {s}" for s, n in sorted(answer["actor_states"].items()))
        print(f"actor states   {by_state}")
    for trouble in answer.get("actor_errors", []):
        print(f"  {trouble['mac']}  {trouble['state']}: {trouble['error']}")
    return 0
