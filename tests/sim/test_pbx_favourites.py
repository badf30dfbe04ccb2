"""The simulated PBX's favourites and node info changed at run time (test API and
``provd sim ctl``), as provd's PBX-data tests need them (issue 11, item 6)."""

import pytest

from provd.protocol.messages import (
    GetNodeInfo,
    GetNodeInfoResult,
    ProfileContactAdded,
    ProfileContactDeleted,
    SubscribeProfile,
    SubscribeProfileResult,
)
from provd.sim import SimConfig, Simulator
from provd.sim.config import FavouriteConfig
from provd.sim.control import handlers
from provd.sim.pbxapi import PbxApiState


def test_configured_favourites_are_the_first_profile():
    api = PbxApiState(favourites=(FavouriteConfig(name="anna", num="201", dialog=True),))
    (result,) = api.handle(SubscribeProfile(src="p"))
    assert isinstance(result, SubscribeProfileResult)
    (anna,) = result.profile.contacts
    assert (anna.name, anna.num, anna.dsp, anna.dialog, anna.presence) == (
        "anna", "201", "anna", True, False,
    )  # fmt: skip


def test_runtime_favourites_indicate_only_while_subscribed():
    api = PbxApiState()
    contact, quiet = api.add_favourite("bob", "202", "Bob", presence=True)
    assert quiet == []  # nobody subscribed
    api.handle(SubscribeProfile(src="p"))
    office, (added,) = api.add_favourite(num="0301234", dsp="Office")
    assert isinstance(added, ProfileContactAdded) and added.src == "p"
    assert added.profile.contact.num == "0301234" and added.profile.contact.presence is False
    (deleted,) = api.remove_favourite(contact.id)
    assert isinstance(deleted, ProfileContactDeleted) and deleted.profile.contact.id == contact.id
    assert api.remove_favourite(contact.id) is None
    assert [c.id for c in api.favourites()] == [office.id]


def test_node_info_change_shows_in_the_next_answer():
    api = PbxApiState()
    api.set_node(prefix_intl="000", country_code="41")
    (answer,) = api.handle(GetNodeInfo(src="n"))
    assert isinstance(answer, GetNodeInfoResult)
    assert (answer.prefix_intl, answer.prefix_ntl, answer.country_code) == ("000", "0", "41")


async def test_ctl_commands_change_the_pbx_and_refuse_bad_requests():
    sim = Simulator(SimConfig.default())
    ctl = handlers(sim)
    assert (await ctl["node"]({"changes": {"prefix_ntl": "00"}}))["node"]["prefix_ntl"] == "00"
    assert sim.pbxapi.node.prefix_ntl == "00"
    bad = await ctl["node"]({"changes": {"prefix": "1"}})
    assert not bad["ok"] and "not a node key" in bad["error"]
    added = await ctl["favourite-add"]({"name": "anna", "dsp": "Anna", "blf": True})
    assert added["ok"]
    (listed,) = (await ctl["favourites"]({}))["favourites"]
    assert listed["id"] == added["id"] and listed["dialog"] is True
    assert not (await ctl["favourite-add"]({"dsp": "no target"}))["ok"]
    assert (await ctl["favourite-remove"]({"id": str(added["id"])}))["removed"] is True
    assert (await ctl["favourite-remove"]({"id": added["id"]}))["removed"] is False
    assert not (await ctl["favourite-remove"]({"id": "x"}))["ok"]


@pytest.mark.parametrize(
    "argv",
    [
        ["node", "prefix_intl=000"],
        ["favourite-add", "--num", "201", "--blf"],
        ["favourite-remove", "3"],
    ],
)
def test_cli_builds_the_requests(argv):
    import argparse

    from provd.cli import sim_ctl

    parser = argparse.ArgumentParser()
    sim_ctl.register(parser.add_subparsers())
    request = sim_ctl._request(parser.parse_args(["ctl", *argv]))
    assert request["cmd"] == argv[0]
