"""PbxApi state, pure (spec section 7)."""

from provd.protocol.messages import (
    AddProfile,
    AddProfileContact,
    Contact,
    DelProfile,
    DelProfileContact,
    GetNodeInfo,
    PresenceUpdate,
    ProfileContactAdded,
    ProfileContactDeleted,
    SetPresence,
    SubscribePresence,
    SubscribeProfile,
    UnsubscribePresence,
    UpdateProfile,
    UpdateProfileContact,
)
from provd.sim.config import NodeInfo, PbxUser
from provd.sim.pbxapi import PbxApiState


def state():
    return PbxApiState(
        (PbxUser(sip="alice", num="201", dn="Alice", guid="g1"),),
        NodeInfo(name="n", country_code="43"),
    )


class TestPresence:
    def test_newest_first_and_updates_only_while_subscribed(self):
        api = state()
        api.handle(SubscribePresence(num="201", src="sub"))
        api.handle(SetPresence(guid="g1", contact="tel:", activity="busy"))
        _result, update = api.handle(SetPresence(sip="alice", contact="im:", activity="away"))
        assert isinstance(update, PresenceUpdate) and update.src == "sub"
        assert [p.contact for p in update.presence] == ["im:", "tel:"]
        api.handle(UnsubscribePresence(sip="alice"))
        assert len(api.handle(SetPresence(sip="alice", contact="tel:"))) == 1

    def test_unknown_user(self):
        (result,) = state().handle(SetPresence(sip="nobody"))
        assert result.error == 1 and result.error_text
        _, presence_state = state().handle(SubscribePresence(sip="nobody"))
        assert presence_state.up is False


class TestProfiles:
    def test_contacts_indicated_on_first_profile(self):
        api = state()
        (added,) = api.handle(AddProfile(name="Favs"))
        (sub,) = api.handle(SubscribeProfile(src="p"))
        assert sub.profile.id == added.id and sub.profile.contacts == ()
        result, note = api.handle(
            AddProfileContact(id=added.id, contact=Contact(dn="Bob", sip="bob", num="202"))
        )
        assert result.error is None and isinstance(note, ProfileContactAdded)
        assert note.src == "p" and note.profile.contact.dsp == "Bob"
        contact_id = note.profile.contact.id
        (upd,) = api.handle(
            UpdateProfileContact(id=added.id, contact=Contact(id=contact_id, num="999"))
        )
        assert upd.error is None and api.profiles[added.id].contacts[0].num == "999"
        _, deleted = api.handle(DelProfileContact(id=added.id, contact=Contact(id=contact_id)))
        assert isinstance(deleted, ProfileContactDeleted)
        assert deleted.profile.contact.id == contact_id

    def test_add_contact_creates_profile_and_errors(self):
        api = state()
        api.handle(AddProfileContact(id=7, name="Auto", contact=Contact(dn="X")))
        assert api.profiles[7].name == "Auto"
        assert api.handle(UpdateProfile(id=7, name="Renamed"))[0].error is None
        assert api.handle(DelProfile(id=8))[0].error == 1
        assert api.handle(DelProfileContact(id=7, contact=Contact(id=99)))[0].error == 1
        assert api.handle(DelProfile(id=7))[0].error is None


def test_node_info():
    (info,) = state().handle(GetNodeInfo(src="x"))
    assert (info.name, info.country_code, info.src) == ("n", "43", "x")
