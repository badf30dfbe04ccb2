"""``provd render MAC``: what that phone would receive, secrets masked by default."""

from __future__ import annotations

import argparse
import json
import sys

import attrs

from ..actors import pbxdata
from ..actors.pbxdata import data_settings
from ..actors.state import phone_data
from ..phones import IdentifyError, Renderer, Vendor, families, identify, vendor_for_oui
from ..phones.examples import phone_request
from ..phones.pbx import PbxDirectory
from ..protocol import ProtocolError, normalize_mac
from .common import NoDatabase, add_config_argument, load_config, open_readonly


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="print the file a phone would receive")
    add_config_argument(parser)
    parser.add_argument("mac")
    parser.add_argument(
        "--vendor", choices=[v.value for v in Vendor], help="default: from the MAC's OUI"
    )
    parser.add_argument(
        "--file",
        help="file as the phone asks for it: a name (cfg000b82aa0003.xml) or the request "
        "path (/Grandstream/cfg000b82aa0003.xml); default: its per-phone file",
    )
    parser.add_argument(
        "--show-secrets", action="store_true", help="print passwords in clear (default: masked)"
    )
    parser.add_argument(
        "--model",
        help="the phone's model (selects the model family; default: from its last fetch)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="after the file, list which source produced each non-trivial value",
    )
    parser.set_defaults(handler=cmd_render)


def _stored_pbx_data(db, config) -> PbxDirectory:
    """The PBX's node info and favourites as the daemon stored them (issue 11, item 4)."""
    pbx = PbxDirectory(data_settings(config.pbx))
    raw = db.setting(pbxdata.SETTING)
    if raw:
        try:
            pbx.load_json(json.loads(raw))
        except ValueError:
            print(f"provd: stored {pbxdata.SETTING} unreadable; rendered without", file=sys.stderr)
    return pbx


def cmd_render(args: argparse.Namespace) -> int:
    config = load_config(args)
    if config is None:
        return 2
    try:
        mac = normalize_mac(args.mac)
    except ProtocolError as exc:
        print(f"provd: {args.mac!r}: {exc.reason}", file=sys.stderr)
        return 2
    try:
        db = open_readonly(config)
    except NoDatabase as exc:
        print(f"provd: {exc}", file=sys.stderr)
        return 1
    record = db.phone(mac)
    if record is None:
        print(f"provd: no phone {mac}", file=sys.stderr)
        return 1
    vendor = Vendor(args.vendor) if args.vendor else vendor_for_oui(mac)
    if vendor is None:
        print(
            f"provd: cannot tell the vendor of {mac} from its OUI; give --vendor", file=sys.stderr
        )
        return 2
    name = args.file or phone_request(vendor, mac).path.rsplit("/", 1)[1]
    # A full request path (as a phone asks, as the demo and the access log print it) is
    # identified as it stands; a bare name is looked up under the vendor's folder.
    path = name if name.startswith("/") else f"/{vendor.value}/{name}"
    try:
        ident = identify(path, None)
    except IdentifyError as exc:
        print(f"provd: {exc}", file=sys.stderr)
        return 2
    if ident.mac and ident.mac != mac:
        print(f"provd: {path} is the file of {ident.mac}, not of {mac}", file=sys.stderr)
        return 2
    model = args.model or _last_model(db, mac, vendor)
    if model:
        ident = attrs.evolve(ident, model=model)
    renderer = Renderer(
        transport=config.phones.sip_transport,
        templates=config.phones.templates or None,
        settings=config.phones,
        pbx=_stored_pbx_data(db, config),
    )
    data = phone_data(record)
    rendered = renderer.render(data, ident, mask_secrets=not args.show_secrets)
    sys.stdout.buffer.write(rendered.content)
    if args.explain:
        _, sources = renderer.explain(data, ident, mask_secrets=True)
        out = sys.stdout
        out.write(f"\n# explain: {vendor.value} {ident.model or '(model unknown)'}")
        family = families.family(vendor, ident.model, ident.file)
        out.write(f" family {family}\n" if family else "\n")
        width = max(len(k) for k in sources) if sources else 0
        for key, source in sources.items():
            out.write(f"#   {key.ljust(width)}  {source}\n")
    return 0


def _last_model(db, mac: str, vendor: Vendor) -> str | None:
    """The model the phone named in its latest fetch as ``vendor``'s phone, if any."""
    for fetch in db.fetches(mac, limit=5):
        if fetch.vendor == vendor.value and fetch.model:
            return fetch.model
    return None
