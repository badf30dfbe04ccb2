"""``provd sim ctl ...``: commands to a running ``provd sim`` over its control socket.

    provd sim ctl status
    provd sim ctl add MAC USER [--cn NAME] [--password PW] [--category C] [--hwid ID]
    provd sim ctl remove MAC
    provd sim ctl push CATEGORY KEY=VALUE... [--domain D]
    provd sim ctl restart-devices
    provd sim ctl register MAC [--addr ADDR]
    provd sim ctl unregister MAC
    provd sim ctl never-register MAC [--undo]

Exit 0 when the simulator did it, 1 when it answered with an error, 3 when no simulator
listens on the socket.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..actors import control
from ..sim.control import PUSHABLE, default_socket


def register(subparsers: argparse._SubParsersAction) -> None:
    ctl = subparsers.add_parser(
        "ctl", help="drive a running `provd sim` (add/remove phones, push changes...)"
    )
    ctl.add_argument(
        "--socket",
        metavar="PATH",
        help=f"the simulator's control socket (default: {default_socket()})",
    )
    sub = ctl.add_subparsers(dest="ctl_command", metavar="ACTION", required=True)
    sub.add_parser("status", help="devices, online, whether provd is listed")
    add = sub.add_parser("add", help="provision a phone through the Users service")
    add.add_argument("mac")
    add.add_argument("user")
    add.add_argument("--cn", default="")
    add.add_argument("--password", default="", help="the phone's SIP password")
    add.add_argument("--category", default="Phones")
    add.add_argument("--hwid", default="")
    remove = sub.add_parser("remove", help="delete a device from Devices")
    remove.add_argument("mac")
    push = sub.add_parser("push", help="change a category and push it to its devices")
    push.add_argument("category")
    push.add_argument(
        "changes", nargs="+", metavar="KEY=VALUE", help=f"keys: {', '.join(sorted(PUSHABLE))}"
    )
    push.add_argument("--domain", default="")
    sub.add_parser("restart-devices", help="restart the Devices app (state kept)")
    reg = sub.add_parser("register", help="the phone registers at the PBX (PbxAdminApi GetRegs)")
    reg.add_argument("mac")
    reg.add_argument("--addr", default="", help="address the registration shows")
    unreg = sub.add_parser("unregister", help="the phone's registration at the PBX ends")
    unreg.add_argument("mac")
    never = sub.add_parser("never-register", help="the phone never registers after a fetch")
    never.add_argument("mac")
    never.add_argument("--undo", action="store_true", help="it registers again after a fetch")
    ctl.set_defaults(handler=cmd_ctl)


def _request(args: argparse.Namespace) -> dict | None:
    """The control request for ``args``, or None after printing why not."""
    cmd = args.ctl_command
    if cmd == "add":
        return {
            "cmd": "add",
            "mac": args.mac,
            "user": args.user,
            "cn": args.cn,
            "password": args.password,
            "category": args.category,
            "hwid": args.hwid,
        }
    if cmd in ("remove", "unregister"):
        return {"cmd": cmd, "mac": args.mac}
    if cmd == "register":
        return {"cmd": cmd, "mac": args.mac, "addr": args.addr}
    if cmd == "never-register":
        return {"cmd": cmd, "mac": args.mac, "never": not args.undo}
    if cmd == "push":
        changes = {}
        for item in args.changes:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"provd sim ctl: {item!r}: expected KEY=VALUE", file=sys.stderr)
                return None
            changes[key] = value
        return {"cmd": "push", "category": args.category, "changes": changes, "domain": args.domain}
    return {"cmd": cmd}


def cmd_ctl(args: argparse.Namespace) -> int:
    path = args.socket or default_socket()
    request = _request(args)
    if request is None:
        return 2
    cmd = request.pop("cmd")
    answer = control.request(path, cmd, timeout=120.0, **request)
    if answer is None:
        print(f"provd sim ctl: no simulator listening at {path}", file=sys.stderr)
        return 3
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0 if answer.get("ok") else 1
