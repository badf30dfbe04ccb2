"""``provd devices categories|code|provisioned``: ask Devices through the running daemon.

The daemon holds the PBX session that makes provd's service login to Devices, so these
commands talk to it over the control socket; the daemon keeps the Devices session open
from the first question on (``DeviceProvisioned`` events for the codes it issued are
stored and logged).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..actors import control
from ..protocol.messages.devices import DEVICE_TYPES
from .common import add_config_argument, load_config, table

#: Seconds the CLI waits for a Devices answer through the daemon (session set-up included).
TIMEOUT = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="ask the Devices app: categories, provisioning codes, provisioned devices",
        description="Questions to the Devices app (com.innovaphone.devices), through the "
        "running daemon's PBX session.",
    )
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    cats = sub.add_parser("categories", help="the provisioning categories")
    add_config_argument(cats)
    cats.add_argument("--type", choices=DEVICE_TYPES, help="only categories for this type")
    cats.set_defaults(handler=cmd_categories)
    code = sub.add_parser(
        "code",
        help="a new provisioning code",
        description="A new provisioning code, valid 15 minutes (7 days with --rollout).",
    )
    add_config_argument(code)
    code.add_argument("--category", required=True, help="the Devices category name")
    code.add_argument("--sip", help="the SIP name of the user the device is for")
    code.add_argument("--rollout", action="store_true", help="valid 7 days, not 15 minutes")
    code.set_defaults(handler=cmd_code)
    prov = sub.add_parser("provisioned", help="the device provisioned with a code, if any")
    add_config_argument(prov)
    prov.add_argument("code")
    prov.set_defaults(handler=cmd_provisioned)


def ask(args: argparse.Namespace, cmd: str, timeout: float = TIMEOUT, **fields: Any):
    """The daemon's answer, or None after printing why there is none."""
    config = load_config(args)
    if config is None:
        return None
    answer = control.request(config.control_socket, cmd, timeout=timeout, **fields)
    if answer is None:
        print(
            f"provd: no daemon answers on the control socket {config.control_socket}: "
            "start `provd run` with this config (it holds the PBX session)",
            file=sys.stderr,
        )
        return None
    if not answer.get("ok"):
        print(f"provd: {answer.get('error') or 'the daemon refused'}", file=sys.stderr)
        return None
    return answer


def when(ts: float | None) -> str:
    """``ts`` in local time and in UTC."""
    if not ts:
        return "-"
    local = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))
    utc = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    return f"{local} ({utc})"


def cmd_categories(args: argparse.Namespace) -> int:
    answer = ask(args, "devices_categories", type=args.type)
    if answer is None:
        return 1
    cats = answer["categories"]
    rows = [
        [str(c["id"]), c["name"], str(c.get("domain_id") or "-"), "yes" if c["config"] else "no"]
        for c in cats
    ]
    print(table(rows, ["ID", "NAME", "DOMAIN", "PROVISIONING"]) if rows else "no categories")
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    answer = ask(args, "devices_code", category=args.category, sip=args.sip, rollout=args.rollout)
    if answer is None:
        return 1
    print(f"code         {answer['code']}")
    print(f"valid until  {when(answer.get('valid_until'))}")
    return 0


def cmd_provisioned(args: argparse.Namespace) -> int:
    answer = ask(args, "devices_provisioned", code=args.code)
    if answer is None:
        return 1
    device = answer.get("device")
    if device is None:
        print(f"{args.code}: no device provisioned with this code (yet)")
        return 1
    fields = [
        ("code", args.code),
        ("hardware id", device.get("hw_id") or "-"),
        ("name", device.get("name") or "-"),
        ("product", device.get("product") or "-"),
        ("version", device.get("version") or "-"),
        ("type", device.get("type") or "-"),
        ("online", "yes" if device.get("online") else "no"),
    ]
    event = answer.get("event")
    if event:
        fields.append(("provisioned", when(event.get("time"))))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")
    return 0
