"""End to end: the PBX's node prefixes and profile favourites reach each vendor's file, and
follow a change made at the PBX (issue 11, item 4)."""

import functools
import json

import httpx
import trio

from provd.backoff import Backoff
from provd.phones import Vendor
from provd.phones.examples import phone_request
from provd.sim import Phone, Simulator

from .harness import ProvdProcess, cli, sim_config

PHONES = {
    Vendor.YEALINK: Phone(mac="805ec0cc0001", user="yara", cn="Yara", password="Yara-Pwd-1"),
    Vendor.SNOM: Phone(mac="000413cc0002", user="sven", cn="Sven", password="Sven-Pwd-2"),
    Vendor.GRANDSTREAM: Phone(mac="000b82cc0003", user="gina", cn="Gina", password="Gina-Pwd-3"),
    Vendor.FANVIL: Phone(mac="0c383ecc0004", user="finn", cn="Finn", password="Finn-Pwd-4"),
    Vendor.POLY: Phone(mac="0004f2cc0005", user="pia", cn="Pia", password="Pia-Pwd-5"),
    Vendor.GIGASET: Phone(mac="7c2f80cc0006", user="gil", cn="Gil", password="Gil-Pwd-6"),
}

#: What each vendor's file says for the node prefixes 00/0/49, and for 000/00/41.
DIAL_PLAN = {
    Vendor.YEALINK: (
        "dialplan.replace.prefix.1 = +49(.)\ndialplan.replace.replace.1 = 0$1\n",
        "dialplan.replace.prefix.1 = +41(.)\ndialplan.replace.replace.1 = 00$1\n",
    ),
    Vendor.SNOM: ("!^\\+49(.*)!sip:0\\1@\\d!", "!^\\+41(.*)!sip:00\\1@\\d!"),
    Vendor.GRANDSTREAM: (  # XML-escaped <\+49=0>
        "<P290>{ &lt;\\+49=0&gt;x+ | &lt;\\+=00&gt;x+",
        "<P290>{ &lt;\\+41=00&gt;x+ | &lt;\\+=000&gt;x+",
    ),
    Vendor.POLY: ('dialplan.digitmap="R+49R0Rx.T|R+R00Rx.T', 'dialplan.digitmap="R+41R00Rx.T'),
}
#: The BLF key for favourite "anna" in each vendor's words (Gigaset bases have no keys).
BLF = {
    Vendor.YEALINK: "linekey.1.value = anna\n",
    Vendor.SNOM: "blf &lt;sip:anna@",
    Vendor.GRANDSTREAM: ">anna<",
    Vendor.FANVIL: "anna@1/ba",
    Vendor.POLY: 'attendant.resourceList.1.address="anna@',
}
SPEED = {
    Vendor.YEALINK: "linekey.2.value = 0301234\n",
    Vendor.SNOM: "speed 0301234",
    Vendor.GRANDSTREAM: ">0301234<",
    Vendor.FANVIL: "0301234@1/f",
    Vendor.POLY: 'attendant.resourceList.2.address="0301234"',
}


async def fetch_all(base: str) -> dict[Vendor, str]:
    texts = {}
    async with httpx.AsyncClient(base_url=base) as client:
        for vendor, phone in PHONES.items():
            request = phone_request(vendor, phone.mac.replace(":", ""))
            response = await client.get(request.path, headers={"User-Agent": request.user_agent})
            assert response.status_code == 200, (vendor, response.text)
            texts[vendor] = response.text
    return texts


async def test_dial_plan_and_favourites_reach_each_vendor_and_follow_changes(tmp_path, nursery):
    config = sim_config(
        pbx={
            "node": {"prefix_intl": "00", "prefix_ntl": "0", "country_code": "49"},
            "favourites": [{"name": "anna", "num": "201", "dsp": "Anna", "dialog": True}],
        }
    )
    with trio.fail_after(90):
        sim = Simulator(config, backoff=Backoff(initial=0.05, cap=0.3))
        await nursery.start(sim.run)
        provd = ProvdProcess(tmp_path, extra="[pbx]\nnode_info_interval = 0.3\n")
        await provd.start(nursery)
        sim.set_provd(provd.appservice_url + "provd")
        results = await sim.provision(PHONES.values())
        assert all(r.ok for r in results), results
        await provd.wait_for("event=pbx.favourites")

        texts = await fetch_all(provd.phones_url)
        for vendor, (german, _swiss) in DIAL_PLAN.items():
            assert german in texts[vendor], (vendor, texts[vendor])
        for vendor, blf in BLF.items():
            assert blf in texts[vendor], (vendor, texts[vendor])
            assert "0301234" not in texts[vendor]

        # A favourite added at the PBX (ProfileContactAdded) is in the next fetch.
        mark = len(provd.lines)
        fid = await sim.add_favourite(num="0301234", dsp="Office")
        await provd.wait_for("event=pbx.phones_changed", after=mark)
        texts = await fetch_all(provd.phones_url)
        for vendor, speed in SPEED.items():
            assert speed in texts[vendor], (vendor, texts[vendor])

        # New node prefixes (asked again every pbx.node_info_interval) too.
        mark = len(provd.lines)
        sim.set_node_info(prefix_intl="000", prefix_ntl="00", country_code="41")
        await provd.wait_for(r"event=pbx.phones_changed .*reason=node_info", after=mark)
        texts = await fetch_all(provd.phones_url)
        for vendor, (german, swiss) in DIAL_PLAN.items():
            assert swiss in texts[vendor] and german not in texts[vendor], vendor

        # A deleted favourite leaves; after a restart without the PBX the files stay.
        mark = len(provd.lines)
        assert await sim.remove_favourite(fid)
        await provd.wait_for("event=pbx.phones_changed", after=mark)
        before = await fetch_all(provd.phones_url)
        assert all("0301234" not in text for text in before.values())
        sim.set_provd("ws://127.0.0.1:9/nowhere")  # the PBX goes elsewhere
        assert await provd.stop() == 0
        await provd.start(nursery)
        assert await fetch_all(provd.phones_url) == before
        status = await trio.to_thread.run_sync(
            functools.partial(cli, "status", "--json", provd=provd)
        )
        pbx = json.loads(status.stdout)["pbx_data"]["example.com"]
        assert pbx == {
            "node": "sim-node",
            "prefixes": "intl 000 ntl 00 subs - cc 41",
            "favourites": 1,
        }
        assert await provd.stop() == 0
        mac = PHONES[Vendor.SNOM].mac
        shown = await trio.to_thread.run_sync(
            functools.partial(cli, "render", mac, "--explain", provd=provd)
        )
        assert shown.returncode == 0, shown.stderr
        assert "!^\\+41(.*)!sip:00\\1@\\d!" in shown.stdout  # offline, from the store
        assert "PBX GetNodeInfo (example.com)" in shown.stdout
