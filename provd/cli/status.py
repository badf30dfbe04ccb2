"""``provd status``: ask the running daemon over its control socket."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..actors import control
from .common import add_config_argument, control_socket_of


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="state of the running daemon")
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_status)


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    return f"{when} ({max(0, time.time() - ts):.0f} s ago)"


def _reachability(facts: dict | None) -> str:
    """`` (reachable since ...)``, `` (UNREACHABLE since ...)`` or ``(not seen yet)``."""
    if not facts or facts.get("up") is None:
        return "  (not seen yet)"
    state = "reachable" if facts["up"] else "UNREACHABLE"
    return f"  ({state} since {_ago(facts.get('since'))})"


def cmd_status(args: argparse.Namespace) -> int:
    # The running daemon is found even while its file on disk does not validate (status
    # then reports the refused reload).
    socket_path, unreadable = control_socket_of(args)
    if socket_path is None:
        print(f"provd: config refused: {unreadable}", file=sys.stderr)
        return 2
    answer = control.request(socket_path, "status")
    if answer is None:
        print(f"provd: not running (no daemon at {socket_path})")
        return 3  # LSB: program is not running
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    states = ", ".join(f"{k} {v}" for k, v in sorted(answer["states"].items())) or "none"
    print(f"provd {answer['version']}, up {answer['uptime']:.0f} s")
    print(f"PBX sessions   {answer['pbx_sessions']}{_reachability(answer.get('pbx'))}")
    print(f"Devices        {answer['devices_url'] or 'not announced yet'}")
    devices = answer.get("devices")
    if devices:
        if devices.get("url_since"):
            print(f"               announced {_ago(devices['url_since'])}")
        print(f"               {_reachability(devices).strip()}")
        if devices.get("last_error"):
            print(
                f"               last error {_ago(devices['last_error_time'])}: "
                f"{devices['last_error']}"
            )
    session = answer.get("devices_session")
    if session and session.get("state") != "idle":
        detail = f" ({session['error']})" if session.get("error") else ""
        print(f"Devices API    session {session['state']}{detail}")
    print(f"phones         {answer['phones']} ({states}); online {answer['online']}")
    print(f"actors         {answer['actors']}")
    if "lifecycle" in answer:
        order = ("pending", "provisioned", "fetched", "registered")
        counts = answer["lifecycle"]
        shown = ", ".join(f"{s} {counts[s]}" for s in order if counts.get(s)) or "none"
        checks = (
            "checked at the PBX"
            if answer.get("registration_checks")
            else ("NOT checked: no PBX session offers PbxAdminApi")
        )
        print(f"lifecycle      {shown}; registrations {checks}")
        for trouble in answer.get("not_registered", []):
            print(f"  {trouble['mac']}  not registered: {trouble['error']}")
    last = answer.get("last_reload")
    if last:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["time"]))
        outcome = "ok" if last["ok"] else f"REFUSED ({last['error']}); old config kept"
        print(f"last reload    {when} {outcome}")
    if not answer.get("ok", True):
        print("warning        the config file on disk was refused: fix it before a restart")
    if answer.get("actor_states"):
        by_state = ", ".join(f"{n} {s}" for s, n in sorted(answer["actor_states"].items()))
        print(f"actor states   {by_state}")
    for trouble in answer.get("actor_errors", []):
        print(f"  {trouble['mac']}  {trouble['state']}: {trouble['error']}")
    return 0
