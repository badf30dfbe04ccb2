"""``provd demo``: the whole product in one minute, on loopback, with throw-away state.

Starts the simulated innovaphone installation (PBX, Users service, Devices app) and a real
``provd run`` child on free loopback ports, provisions one sample phone per vendor model
family (Gigaset N510, N720 and N670 included) with
visible progress, restarts provd to show every phone coming back through the
challenge-with-stored-password path, fetches each phone's file over HTTP as that vendor's
phone would, and prints a summary table. Each phone then registers at the simulated PBX,
which provd checks through PbxAdminApi (``GetRegs``); one phone is set up never to register
(as with wrong credentials) and gets flagged. The lifecycle table closes the demo. Exit
status 0 when every step worked.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

import attrs
import httpx
import trio

from .. import logs
from ..backoff import Backoff
from ..child import DaemonChild
from ..phones import Vendor
from ..phones.examples import model, phone_request
from ..sim import Phone, SimConfig, Simulator
from ..sim.pbx import http_url
from ..store.database import Database
from .common import table

SAMPLE_PHONES = [
    (Vendor.YEALINK, Phone(mac="805ec0aa0001", user="alice", cn="Alice Adler")),
    (Vendor.SNOM, Phone(mac="000413aa0002", user="bruno", cn="Bruno Bär")),
    (Vendor.GRANDSTREAM, Phone(mac="000b82aa0003", user="chloe", cn="Chloé Clément")),
    (Vendor.FANVIL, Phone(mac="0c383eaa0004", user="dara", cn="Dara Doyle")),
    (Vendor.POLY, Phone(mac="0004f2aa0005", user="emil", cn="Emil Eriksson")),
]
#: The admin App's name (provd's default ``appservice.admin_app``).
ADMIN_APP = "provd-admin"
#: What the file of a model family must contain (its own file format).
FAMILY_MARKER = {"N670": "<provisioning", "N720": "BS_VOIP_Data", "N510": "BS_IP_Data1"}
#: One more phone per further model family: (vendor, model, phone).
FAMILY_PHONES = [
    (Vendor.GIGASET, "N720", Phone(mac="7c2f80aa0006", user="fritz", cn="Fritz Fähnrich")),
    (Vendor.GRANDSTREAM, "GXP1780", Phone(mac="000b82aa0007", user="greta", cn="Greta Gál")),
    (Vendor.GIGASET, "N510", Phone(mac="7c2f80aa0008", user="hugo", cn="Hugo Hørsholm")),
    (Vendor.GIGASET, "N670", Phone(mac="7c2f80aa0009", user="ines", cn="Inès Ibáñez")),
]
#: The phone that fetches its file but never registers (as with wrong credentials).
SILENT_PHONE = (Vendor.YEALINK, None, Phone(mac="805ec0aa000a", user="jonas", cn="Jonas Jäger"))
#: Seconds after its fetch at which the silent phone is flagged (``registration.warn_after``).
DEMO_WARN_AFTER = 1.0


@attrs.define
class Row:
    vendor: Vendor
    phone: Phone
    model: str | None = None
    provisioned: str = "-"
    reconnect: str = "-"
    file: str = "-"
    size: str = "-"
    ok: bool = True
    #: False: the phone never registers at the PBX (it must end flagged).
    registers: bool = True


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="provision sample phones end to end against the simulator"
    )
    parser.add_argument("--keep", metavar="DIR", help="keep state and logs in DIR")
    parser.add_argument("--verbose", action="store_true", help="show provd's log lines")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep running after the demo so a person can look at the admin App (Ctrl-C ends)",
    )
    parser.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    logs.configure("warning", fmt="kv")  # the simulator's own log; progress is printed
    if args.keep:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        return _run(workdir, args)
    with tempfile.TemporaryDirectory(prefix="provd-demo-") as tmp:
        return _run(Path(tmp), args)


def _run(workdir: Path, args: argparse.Namespace) -> int:
    try:
        return trio.run(_demo, workdir, args.verbose, getattr(args, "serve", False))
    except KeyboardInterrupt:
        say("\nprovd demo: stopped")
        return 0


def say(text: str = "") -> None:
    print(text, flush=True)


async def _demo(workdir: Path, verbose: bool, serve: bool = False) -> int:
    password = secrets.token_urlsafe(18)
    samples = [(v, None, p) for v, p in SAMPLE_PHONES] + FAMILY_PHONES + [SILENT_PHONE]
    phones = [(v, m, attrs.evolve(p, password=secrets.token_urlsafe(9))) for v, m, p in samples]
    rows = [Row(v, p, m, registers=p.mac != SILENT_PHONE[2].mac) for v, m, p in phones]
    config = SimConfig.from_mapping(
        {
            "provd": {"url": None, "password": password},
            "devices": {
                "domains": [
                    {
                        "name": "example.com",
                        "admin_password": secrets.token_urlsafe(9),
                        "categories": [
                            {
                                "name": "Phones",
                                "stun_server": "stun.example.com:3478",
                                "turn_server": "turn.example.com:3478",
                                "turn_user": "demo",
                                "turn_password": secrets.token_urlsafe(9),
                            }
                        ],
                    }
                ]
            },
        }
    )
    sim = Simulator(config, backoff=Backoff(initial=0.05, cap=0.5))
    sim.pbxadmin.set_rule(SILENT_PHONE[2].mac, register=False)
    config_path = workdir / "provd.toml"
    daemon = DaemonChild(config_path, cwd=workdir)
    started = time.monotonic()
    wall_start = time.time()
    async with trio.open_nursery() as nursery:
        say(f"provd demo: throw-away state in {workdir}")
        addresses = await nursery.start(sim.run)
        say(f"  simulated Devices app     {addresses.devices_url}")
        _write_config(config_path, workdir, password, port=0)
        await daemon.start(nursery)
        if verbose:
            nursery.start_soon(_echo, daemon)
        say(f"  provd app service         {daemon.appservice_url}")
        say(f"  provd phone files         {daemon.phones_url}")
        sim.set_provd(daemon.appservice_url + "provd")
        with trio.fail_after(30):
            await sim.pbx.wait_logged_in()
        say("  simulated PBX App object logged in to provd; Services subscribed")

        say("\n1. Users service sends ProvisioningPhone, one phone at a time")
        for i, row in enumerate(rows, 1):
            (result,) = await sim.provision([row.phone])
            row.provisioned = f"{result.outcome} {result.latency * 1000:.0f} ms"
            row.ok &= result.ok
            say(
                f"  [{i}/{len(rows)}] {row.phone.mac}  {row.vendor.value:<11} "
                f"{row.phone.user:<6} {result.outcome}"
                + (f" ({result.error})" if result.error else "")
                + f"  {result.latency * 1000:.0f} ms"
            )
        with trio.fail_after(30):
            for row in rows:
                await sim.wait_online(row.phone.mac)
        say("  every phone holds a Sysclient connection to Devices")

        say("\n2. instance restart: provd stops, starts, reconnects every phone")
        status = await daemon.stop()
        say(f"  provd stopped (exit {status})")
        _write_config(config_path, workdir, password, port=daemon.appservice_port)
        begin = time.monotonic()
        await daemon.start(nursery)
        with trio.fail_after(30):
            for row in rows:
                await sim.wait_online(row.phone.mac)
        took = (time.monotonic() - begin) * 1000
        for row in rows:
            fresh = len(sim.passwords_issued(row.phone.mac)) == 1
            row.reconnect = "challenge ok" if fresh else "NEW PASSWORD"
            row.ok &= fresh
        say(
            f"  all {len(rows)} phones back in {took:.0f} ms, each answering the challenge "
            "with its stored password"
        )

        say("\n3. each phone fetches its file as that vendor's phone would")
        async with httpx.AsyncClient(base_url=daemon.phones_url, timeout=10) as client:
            for row, (vendor, family_model, phone) in zip(rows, phones, strict=True):
                request = phone_request(vendor, phone.mac, family_model)
                # then it registers at the simulated PBX (unless it is the silent one)
                response = await sim.fetch_file(
                    daemon.phones_url, vendor, phone.mac, family_model, client=client
                )
                good = response.status_code == 200 and phone.password in response.text
                good &= FAMILY_MARKER.get(family_model or "", "") in response.text
                row.file = f"{request.path} ({model(vendor, family_model)})"
                row.size = f"{len(response.content)} B" if good else f"HTTP {response.status_code}"
                row.ok &= good
                label = f"{vendor.value} {model(vendor, family_model)}"
                say(f"  {label:<20} GET {request.path:<32} {row.size}")
            # A well-formed request for a MAC provd doesn't know (the User-Agent carries it).
            unknown = phone_request(Vendor.YEALINK, "805ec0ffffff")
            stranger = await client.get(unknown.path, headers={"User-Agent": unknown.user_agent})
            path = unknown.path
            say(f"  {'(unknown)':<20} GET {path:<32} HTTP {stranger.status_code}")
            refused = stranger.status_code == 404
            for row in rows:
                row.ok &= refused

        say("\n4. provd asks the PBX whether each phone registered (PbxAdminApi GetRegs)")
        with trio.fail_after(30):
            for row in rows:
                if row.registers:
                    await daemon.wait_for(
                        f"event=phone.lifecycle mac={row.phone.mac} from=fetched to=registered"
                    )
            silent = SILENT_PHONE[2]
            await daemon.wait_for(f"event=phone.not_registered mac={silent.mac}")
        say(f"  {len(rows) - 1} phones registered; {silent.mac} ({silent.user}) fetched its file")
        say(f"  but did not register within {DEMO_WARN_AFTER:g} s: flagged with a warning")

        app_url = http_url(daemon.appservice_url) + "provd/" + ADMIN_APP + ".htm"
        say("\n5. the admin App, inside the simulated myApps and on its own")
        say(f"  myApps shell (App logged in via getLogin)  {addresses.myapps_url}")
        say(f"  the App on its own (instance password)     {app_url}")
        if serve:
            say(f"  instance password for the standalone App:  {password}")
            say("  serving until Ctrl-C ...")
            await trio.sleep_forever()

        await daemon.stop()
        nursery.cancel_scope.cancel()

    say("\nsummary")
    say(
        table(
            [
                [
                    r.phone.mac,
                    r.vendor.value,
                    r.phone.user,
                    r.provisioned,
                    r.reconnect,
                    r.file,
                    r.size,
                ]
                for r in rows
            ],
            ["MAC", "VENDOR", "USER", "PROVISIONED", "AFTER RESTART", "FILE", "SIZE"],
        )
    )
    say("\nlifecycle (times after the demo started)")
    say(_lifecycle_table(workdir, rows, wall_start))
    ok = all(r.ok for r in rows)
    say(
        f"\n{'all good' if ok else 'SOMETHING FAILED'} in {time.monotonic() - started:.1f} s. "
        "Next: `provd sim --help`, `provd run --help`, etc/provd.toml."
    )
    return 0 if ok else 1


def _lifecycle_table(workdir: Path, rows: list[Row], start: float) -> str:
    """Each phone's lifecycle as provd stored it; marks the rows whose outcome is wrong."""
    db = Database.open_readonly(str(workdir / "provd.db"))
    try:
        lifecycles = db.lifecycles()
    finally:
        db.close()

    def at(ts: float) -> str:
        return f"+{ts - start:.2f} s" if ts else "-"

    lines = []
    for row in rows:
        life = lifecycles.get(row.phone.mac)
        if life is None:
            row.ok = False
            lines.append([row.phone.mac, row.vendor.value, row.phone.user, "MISSING"] + ["-"] * 4)
            continue
        if row.registers:
            row.ok &= life.state == "registered"
            note = f"from {life.addr}" if life.state == "registered" else life.error
        else:
            row.ok &= life.state == "fetched" and life.warned
            note = "FLAGGED: " + life.error if life.warned else "not flagged"
        lines.append(
            [
                row.phone.mac,
                row.vendor.value,
                row.phone.user,
                life.state,
                at(life.provisioned_at),
                at(life.fetched_at),
                at(life.registered_at),
                note,
            ]
        )
    headers = ["MAC", "VENDOR", "USER", "STATE", "PROVISIONED", "FETCHED", "REGISTERED", "NOTE"]
    return table(lines, headers)


async def _echo(daemon: DaemonChild) -> None:
    seen = 0
    while True:
        await daemon.wait_for(r".", after=seen)
        for line in daemon.lines[seen:]:
            print(f"    | {line}", file=sys.stderr)
        seen = len(daemon.lines)


def _write_config(path: Path, workdir: Path, password: str, *, port: int) -> None:
    path.write_text(
        f'[appservice]\nlisten = "127.0.0.1:{port}"\npassword = "{password}"\n'
        '[phones]\nlisten = "127.0.0.1:0"\n'
        f'[store]\npath = "{workdir / "provd.db"}"\n'
        '[log]\nlevel = "info"\nformat = "kv"\n'
        "[provisioning]\nbackoff_initial = 0.05\nbackoff_cap = 1.0\n"
        "[registration]\nretry_interval = 0.2\ncheck_interval = 30.0\n"
        f"warn_after = {DEMO_WARN_AFTER}\nmax_per_second = 50.0\n"
        f'[control]\nsocket = "{workdir / "provd.sock"}"\n'
    )
