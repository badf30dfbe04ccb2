"""``provd phones list|show|remove``: what the store holds, secrets masked."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..actors import control
from ..actors.state import phone_data
from ..phones.keys import OperatorKeys, keys_from
from ..protocol import ProtocolError, normalize_mac
from ..store.database import Database
from .common import NoDatabase, add_config_argument, load_config, mask, open_readonly, table
from .phones_add import cmd_add


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("phones", help="list, show, add or remove provisioned phones")
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="one line per phone")
    add_config_argument(listing)
    listing.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one phone in detail")
    add_config_argument(show)
    show.add_argument("mac")
    show.add_argument(
        "--show-secrets",
        action="store_true",
        help="print the phone's web/admin password in clear (default: masked)",
    )
    show.set_defaults(handler=cmd_show)
    keys = sub.add_parser(
        "keys",
        help="show or set a phone's function keys",
        description="Without options: the phone's effective keys and where they come from. "
        "KEY is kind:target:label with kind line, blf or speed (e.g. blf:201:Anna).",
    )
    keys.add_argument("mac")
    keys.add_argument("--category", help="the Devices category whose [phones.keys] apply")
    keys.add_argument("--set", nargs="+", metavar="KEY", help="the phone's own keys, in order")
    keys.add_argument("--clear", action="store_true", help="drop the phone's own keys")
    keys.set_defaults(handler=cmd_keys)
    add = sub.add_parser(
        "add",
        allow_abbrev=False,  # "--password X" must fail, not become --password-file X
        help="provision a phone (or a CSV of them) without the Users service",
        description="Provision a phone for a PBX user: the daemon gets a code from Devices, "
        "the user's names and device entry from the PBX (PbxAdminApi), and registers the "
        "phone. The SIP password is prompted for (no echo) or read from --password-file; "
        "it is never an argument. --csv FILE adds many: columns "
        "mac,user,category[,hwid][,password], an optional header line naming them.",
    )
    add_config_argument(add)
    add.add_argument("mac", nargs="?", help="the phone's MAC address")
    add.add_argument("--user", help="the PBX user's SIP name")
    add.add_argument("--category", help="the Devices category for the code")
    add.add_argument("--hwid", help="the hardware id of the user's device entry (default: the MAC)")
    add.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the SIP password from the first line of FILE (default: prompt)",
    )
    add.add_argument("--csv", metavar="FILE", help="add the phones listed in FILE")
    add.set_defaults(handler=cmd_add)
    remove = sub.add_parser("remove", help="forget a phone and stop its actor")
    add_config_argument(remove)
    remove.add_argument("mac")
    remove.set_defaults(handler=cmd_remove)


def _open(args: argparse.Namespace) -> tuple[Database, str] | None:
    """The store, read-only (never created), and the control socket path; None after
    printing why not."""
    config = load_config(args)
    if config is None:
        return None
    try:
        return open_readonly(config), config.control_socket
    except NoDatabase as exc:
        print(f"provd: {exc}", file=sys.stderr)
        return None


def _online(online: bool, daemon_running: bool) -> str:
    """Liveness as the store says it, or ``unknown`` when no daemon keeps it current."""
    if not daemon_running:
        return "unknown"
    return "yes" if online else "no"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def cmd_list(args: argparse.Namespace) -> int:
    opened = _open(args)
    if opened is None:
        return 2
    db, socket_path = opened
    running = control.request(socket_path, "status") is not None
    lifecycles = db.lifecycles()
    rows = [
        [
            r.mac,
            r.usename,
            r.state,
            _online(r.online, running),
            str(len(r.config)),
            _when(r.updated),
            *_lifecycle_cells(lifecycles.get(r.mac)),
        ]
        for r in db.phones()
    ]
    print(
        table(
            rows,
            ["MAC", "USER", "STATE", "ONLINE", "CONFIG", "UPDATED", "LIFECYCLE", "SINCE", "REG"],
        )
    )
    return 0


def _lifecycle_cells(life) -> list[str]:
    """LIFECYCLE (``!`` = fetched but not registered in time), SINCE, REG (address)."""
    if life is None:
        return ["-", "-", "-"]
    state = life.state + (" !" if life.warned else "")
    return [state, _when(life.since), life.addr or "-"]


def lifecycle_lines(life) -> list[tuple[str, str]]:
    """``phones show`` fields of a phone's lifecycle."""
    if life is None:
        return [("lifecycle", "- (not recorded yet)")]
    state = life.state + (" (NOT REGISTERED in time)" if life.warned else "")
    return [
        ("lifecycle", f"{state} since {_when(life.since)}"),
        ("  provisioned", _when(life.provisioned_at)),
        ("  fetched", _when(life.fetched_at)),
        ("  registered", _when(life.registered_at) + (f" from {life.addr}" if life.addr else "")),
        ("  last PBX check", _when(life.checked_at)),
        ("  last error", life.error or "-"),
    ]


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
    running = control.request(socket_path, "status") is not None
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
        ("online", _online(r.online, running) + ("" if running else " (daemon not running)")),
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
        ("phone web password", _web_password(r, getattr(args, "show_secrets", False))),
        ("revision", str(r.revision)),
        ("created", _when(r.created)),
        ("updated", _when(r.updated)),
        *lifecycle_lines(db.lifecycle(mac)),
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


def _web_password(r, show: bool) -> str:
    """The password in the phone's file for its web UI/admin login, and where it came from."""
    value = r.admin_password or r.web_password
    if not value:
        return "-"
    source = "Devices administrative password" if r.admin_password else "provd, random"
    return f"{value if show else mask(value)} ({source})"


def cmd_keys(args: argparse.Namespace) -> int:
    mac = _mac(args.mac)
    config = load_config(args)
    if mac is None or config is None:
        return 2
    db = Database(config.store.path)
    own: list[dict[str, str]] | None = None
    if args.set and args.clear:
        print("provd: give --set or --clear, not both", file=sys.stderr)
        return 2
    if args.set:
        try:
            own = [key.as_dict() for key in keys_from(args.set, "--set")]
        except ValueError as exc:
            print(f"provd: {exc}", file=sys.stderr)
            return 2
    elif args.clear:
        own = []
    if own is not None or args.category is not None:
        answer = control.request(
            config.control_socket, "keys", mac=mac, category=args.category, keys=own
        )
        if answer is None:  # no daemon running: edit the store directly
            if not db.set_phone_keys(mac, category=args.category, keys=own):
                print(f"provd: no phone {mac}", file=sys.stderr)
                return 1
        elif not answer.get("ok"):
            print(f"provd: {answer.get('error')}", file=sys.stderr)
            return 1
        print(f"{mac}: keys saved")
    record = db.phone(mac)
    if record is None:
        print(f"provd: no phone {mac}", file=sys.stderr)
        return 1
    data = phone_data(record)
    source = OperatorKeys(config.phones.keys)
    print(f"category: {data.key_category or '-'}; keys from {source.source(data)}")
    rows = [[str(n), k.kind, k.target, k.label] for n, k in enumerate(source.keys(data), 1)]
    print(table(rows, ["KEY", "KIND", "TARGET", "LABEL"]) if rows else "no keys")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    mac = _mac(args.mac)
    config = load_config(args)
    if mac is None or config is None:
        return 2
    answer = control.request(config.control_socket, "remove", mac=mac)
    if answer is None:  # no daemon running: edit the store directly (if there is one)
        try:
            open_readonly(config).close()
        except NoDatabase as exc:
            print(f"provd: {exc}", file=sys.stderr)
            return 2
        removed = Database(config.store.path).remove_phone(mac)
    elif not answer.get("ok"):
        print(f"provd: {answer.get('error')}", file=sys.stderr)
        return 1
    else:
        removed = bool(answer.get("removed"))
    print(f"{mac}: {'removed' if removed else 'not found'}")
    return 0 if removed else 1
