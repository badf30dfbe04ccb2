"""The PBX's node info and favourites on the PBX session (PbxApi): asked, stored, and each
change bumps the revision of exactly the phones whose files it changes (issue 11, item 4)."""

import json

import attrs
import trio

from provd.actors.pbxdata import SETTING, PbxData
from provd.actors.state import PhoneDirectory
from provd.config import PbxSettings
from provd.protocol.messages import (
    AppInfo,
    AppInfoResult,
    Contact,
    GetNodeInfo,
    GetNodeInfoResult,
    PbxInfo,
    Profile,
    ProfileContactAdded,
    ProfileContactDeleted,
    ProfileContactRef,
    SubscribeProfile,
    SubscribeProfileResult,
)
from provd.store.actor import Store

from .test_appservice import logged_in

PHONES = {"0004f2000001": "example.com", "0004f2000002": "example.com", "0004f2000003": "b.org"}


async def started_store(tmp_path, nursery) -> Store:
    store = Store(str(tmp_path / "provd.db"))
    await nursery.start(store.run)
    for mac, domain in PHONES.items():
        await store.call(
            lambda db, mac=mac, domain=domain: db.upsert_phone(
                mac=mac,
                code="1",
                hwid="h",
                usename="u",
                cn="c",
                password="p",
                domain=domain,
                dns="pbx",
            )
        )
    return store


async def revisions(store: Store) -> dict[str, int]:
    return {r.mac: r.revision for r in await store.call(lambda db: db.phones())}


async def tracker(store, settings=None) -> tuple[PbxData, PhoneDirectory]:
    phones = PhoneDirectory()
    phones.load(await store.call(lambda db: db.phones()))
    settings = settings or PbxSettings()
    return PbxData(store, phones, lambda: settings), phones


NODE = GetNodeInfoResult(
    name="n", prefix_intl="00", prefix_ntl="0", prefix_subs="", country_code="49"
)


async def test_one_pbx_change_bumps_every_phone_and_survives_a_restart(tmp_path, nursery):
    """With one PBX every phone is its phone: node info and each favourite change bump all
    (one transaction), the directory follows; a new tracker loads the stored data."""
    store = await started_store(tmp_path, nursery)
    data, phones = await tracker(store)
    before = await revisions(store)
    await data.handle("example.com", NODE)
    after = await revisions(store)
    assert all(after[mac] == before[mac] + 1 for mac in PHONES)
    assert all(phones.get(mac).revision == after[mac] for mac in PHONES)
    await data.handle("example.com", NODE)  # unchanged: nothing bumped
    assert await revisions(store) == after

    anna = Contact(id=7, name="sip:anna@example.com", num="201", dsp="Anna", dialog=True)
    profile = Profile(id=1, name="Favourites", contacts=(anna,))
    await data.handle("example.com", SubscribeProfileResult(profile=profile))
    office = Contact(id=8, name="", num="0301234", dsp="Office")
    await data.handle(
        "example.com", ProfileContactAdded(profile=ProfileContactRef(id=1, contact=office))
    )
    await data.handle(
        "example.com", ProfileContactDeleted(profile=ProfileContactRef(id=1, contact=Contact(id=7)))
    )
    assert all(r == after[m] + 3 for m, r in (await revisions(store)).items())
    entry = data.directory.get("example.com")
    assert [f.id for f in entry.favourites] == [8]

    stored = json.loads(await store.call(lambda db: db.setting(SETTING)))
    assert stored["example.com"]["node"]["country_code"] == "49"
    again, _ = await tracker(store)
    await again.load()
    assert again.directory.to_json() == data.directory.to_json()


async def test_with_two_pbxs_only_the_phones_of_the_changed_one_are_bumped(tmp_path, nursery):
    store = await started_store(tmp_path, nursery)
    data, _ = await tracker(store)
    await data.handle("example.com", NODE)
    first = await revisions(store)
    # A second PBX: the phones that fell back to the only PBX may now have none: all bumped.
    await data.handle("b.org", NODE)
    before = await revisions(store)
    assert all(before[mac] == first[mac] + 1 for mac in PHONES)
    await data.handle("b.org", attrs.evolve(NODE, country_code="41"))
    after = await revisions(store)
    assert after["0004f2000003"] == before["0004f2000003"] + 1
    assert after["0004f2000001"] == before["0004f2000001"]
    assert after["0004f2000002"] == before["0004f2000002"]


async def test_reload_with_new_switches_bumps_all_and_unchanged_bumps_none(tmp_path, nursery):
    store = await started_store(tmp_path, nursery)
    settings = {"now": PbxSettings()}
    phones = PhoneDirectory()
    phones.load(await store.call(lambda db: db.phones()))
    data = PbxData(store, phones, lambda: settings["now"])
    before = await revisions(store)
    await data.reconfigure()
    assert await revisions(store) == before
    settings["now"] = PbxSettings(favourites=False)
    await data.reconfigure()
    assert all(r == before[m] + 1 for m, r in (await revisions(store)).items())
    assert data.directory.settings.favourites is False


async def test_session_asks_profile_then_node_info_every_interval(autojump_clock):
    """PbxApi listed: SubscribeProfile once, GetNodeInfo at once and every interval."""
    sent = []
    data = PbxData(None, PhoneDirectory(), lambda: PbxSettings(node_info_interval=60.0))

    async def send(msg):
        sent.append((trio.current_time(), msg))

    with trio.move_on_after(150):
        await data.session(send, "example.com", ("PbxApi", "Services"))
    assert [type(m) for _, m in sent] == [SubscribeProfile, GetNodeInfo, GetNodeInfo, GetNodeInfo]
    assert [t - sent[0][0] for t, _ in sent] == [0, 0, 60, 120]


async def test_session_without_pbxapi_asks_nothing(autojump_clock):
    sent = []
    data = PbxData(None, PhoneDirectory(), PbxSettings)

    async def send(msg):
        sent.append(msg)

    with trio.move_on_after(10):
        await data.session(send, "example.com", ("Services",))
    assert sent == []


async def test_pbx_session_asks_and_only_a_pbx_session_is_heard(daemon):
    """On the daemon: after PbxInfo listing PbxApi provd subscribes to the profile and asks
    node info; a favourite indication on a session without PbxInfo is ignored."""
    d, bound = daemon
    with trio.fail_after(5):
        async with logged_in(bound.appservice_url) as stranger:
            anna = Contact(id=1, name="anna", dsp="Anna", dialog=True)
            await stranger.send(ProfileContactAdded(profile=ProfileContactRef(id=1, contact=anna)))
            await stranger.send(AppInfo(src="sync"))  # answered after the indication
            await stranger.receive_kind(AppInfoResult)
            assert d.pbx_data.directory.domains() == []

        async with logged_in(bound.appservice_url) as pbx:
            await pbx.send(PbxInfo(domain="Example.com", pbx="master", apis=("PbxApi",)))
            subscribe = await pbx.receive_kind(SubscribeProfile)
            ask = await pbx.receive_kind(GetNodeInfo)
            assert subscribe.API == ask.API == "PbxApi"  # decoded as PbxApi messages
            await pbx.send(attrs.evolve(NODE, src=ask.src))
            await pbx.send(
                SubscribeProfileResult(src=subscribe.src, profile=Profile(id=1, contacts=(anna,)))
            )
            await pbx.send(AppInfo(src="sync"))
            await pbx.receive_kind(AppInfoResult)
            entry = d.pbx_data.directory.get("example.com")
            assert entry.node.country_code == "49"
            assert [f.name for f in entry.favourites] == ["anna"]


def test_pbx_config_keys_are_checked_and_named():
    import pytest

    from provd.config import Config, ConfigError

    base = {"appservice": {"password": "long-enough-secret"}}
    ok = Config.from_mapping({**base, "pbx": {"prefix_intl": "000", "favourites": False}})
    assert ok.pbx.prefix_intl == "000" and ok.pbx.favourites is False
    for pbx, key in (
        ({"prefix_intl": "00\n"}, "pbx.prefix_intl"),
        ({"country_code": "49a"}, "pbx.country_code"),
        ({"node_info_interval": 0}, "pbx.node_info_interval"),
        ({"dial_plan": "yes"}, "pbx.dial_plan"),
        ({"area": "30"}, "pbx.area"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            Config.from_mapping({**base, "pbx": pbx})
