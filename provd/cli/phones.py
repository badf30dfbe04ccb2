"""``provd phones list|show|remove``: what the store holds, secrets masked."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..actors import control
from ..protocol import ProtocolError, normalize_mac
from ..store.database import Database
from .common import add_config_argument, load_config, mask, table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("phones", help="list, show or remove provisioned phones")
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="one line per phone").set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one phone in detail")
    show.add_argument("mac")
    show.set_defaults(handler=cmd_show)
    remove = sub.add_parser("remove", help="forget a phone and stop its actor")
    remove.add_argument("mac")
    remove.set_defaults(handler=cmd_remove)


def _open(args: argparse.Namespace) -> tuple[Database, str] | None:
    config = load_config(args)
    if config is None:
        return None
    return Database(config.store.path), config.control_socket


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def cmd_list(args: argparse.Namespace) -> int:
    opened = _open(args)
    if opened is None:
        return 2
    db, _ = opened
    rows = [
        [
            r.mac,
            r.usename,
            r.state,
            "yes" if r.online else "no",
            str(len(r.config)),
            _when(r.updated),
        ]
        for r in db.phones()
    ]
    print(table(rows, ["MAC", "USER", "STATE", "ONLINE", "CONFIG", "UPDATED"]))
    return 0


def _mac(text: str) -> str | None:
    try:
        return normalize_mac(text)
    except ProtocolError as exc:
        print(f"provd: {text!r}: {exc.reason}", file=sys.stderr)
        return None


def cmd_show(args: argparse.Namespace) -> int:
    mac = _mac(args.mac)
    opened = _open(args)
    if mac is None or opened is None:
        return 2
    db, socket_path = opened
    r = db.phone(mac)
    if r is None:
        print(f"provd: no phone {mac}", file=sys.stderr)
        return 1
    actor = control.request(socket_path, "actor", mac=mac, timeout=2.0)
    if actor is None:
        actor_line = "daemon not running"
    elif "state" not in actor:
        actor_line = "running" if actor.get("running") else "not running"
    else:
        actor_line = actor["state"] + (f" ({actor['error']})" if actor.get("error") else "")
    fields = [
        ("mac", r.mac),
        ("state", r.state + (f" ({r.error})" if r.error else "")),
        ("online", "yes" if r.online else "no"),
        ("actor", actor_line),
        ("user", r.usename),
        ("name", r.cn),
        ("hwid", r.hwid),
        ("domain", r.domain),
        ("dns", r.dns),
        ("code", r.code),
        ("password", mask(r.password)),
        ("device password", mask(r.sysclient_password)),
        ("admin password", mask(r.admin_password)),
        ("revision", str(r.revision)),
        ("created", _when(r.created)),
        ("updated", _when(r.updated)),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    print("\nconfiguration (as Devices sent it):")
    for ctype, item in sorted(r.config.items()):
        shown = {k: mask(v) if "password" in k.lower() else v for k, v in item.items()}
        print(f"  {ctype}: {json.dumps(shown, ensure_ascii=False)}")
    fetches = db.fetches(mac)
    print("\nrecent fetches:")
    if not fetches:
        print("  none")
    else:
        rows = [
            [
                _when(f.time),
                f.address,
                f.file,
                f.vendor,
                f.model or "",
                f.firmware or "",
                f.user_agent,
            ]
            for f in fetches
        ]
        print(table(rows, ["TIME", "ADDRESS", "FILE", "VENDOR", "MODEL", "FIRMWARE", "USER-AGENT"]))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    mac = _mac(args.mac)
    opened = _open(args)
    if mac is None or opened is None:
        return 2
    db, socket_path = opened
    answer = control.request(socket_path, "remove", mac=mac)
    if answer is None:  # no daemon running: edit the store directly
        removed = db.remove_phone(mac)
    elif not answer.get("ok"):
        print(f"provd: {answer.get('error')}", file=sys.stderr)
        return 1
    else:
        removed = bool(answer.get("removed"))
    print(f"{mac}: {'removed' if removed else 'not found'}")
    return 0 if removed else 1
