"""PbxApi as the simulated PBX serves it on the App-object connection, sans-I/O (spec section 7).

Data (presence, profiles) belongs to the PBX and survives reconnects; subscriptions belong
to a connection and are dropped by :meth:`PbxApiState.reset_subscriptions`. ``handle``
returns every message to send, results first, then the indications the change caused;
indications echo the ``src`` of the subscription they belong to.

Where the spec is silent: an unknown user/profile/contact is ``error: 1`` with an
``errorText``; ``UpdateProfileContact`` raises no indication (the spec lists only
added/deleted); a contact's ``dsp``/``name`` default to its ``dn``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..protocol.messages import (
    AddProfile,
    AddProfileContact,
    AddProfileContactResult,
    AddProfileResult,
    Contact,
    DelProfile,
    DelProfileContact,
    DelProfileContactResult,
    DelProfileResult,
    GetNodeInfo,
    GetNodeInfoResult,
    Message,
    Presence,
    PresenceState,
    PresenceUpdate,
    Profile,
    ProfileContactAdded,
    ProfileContactDeleted,
    ProfileContactRef,
    SetPresence,
    SetPresenceResult,
    SubscribePresence,
    SubscribePresenceResult,
    SubscribeProfile,
    SubscribeProfileResult,
    UnsubscribePresence,
    UnsubscribePresenceResult,
    UnsubscribeProfile,
    UnsubscribeProfileResult,
    UpdateProfile,
    UpdateProfileContact,
    UpdateProfileContactResult,
    UpdateProfileResult,
)
from .config import FavouriteConfig, NodeInfo, PbxUser


@attrs.define
class _Profile:
    id: int
    name: str
    contacts: list[Contact] = attrs.field(factory=list)

    def view(self) -> Profile:
        return Profile(id=self.id, name=self.name, contacts=self.contacts)


class PbxApiState:
    def __init__(
        self,
        users: tuple[PbxUser, ...] = (),
        node: NodeInfo | None = None,
        favourites: tuple[FavouriteConfig, ...] = (),
    ) -> None:
        self.users = list(users)
        self.node = node or NodeInfo()
        #: Presence per user sip, newest first.
        self.presence: dict[str, list[Presence]] = {}
        self.profiles: dict[int, _Profile] = {}
        self._next_profile = 1
        self._next_contact = 1
        self._presence_subs: dict[str, str | None] = {}  # user sip -> subscription src
        self._profile_sub: tuple[bool, str | None] = (False, None)
        self._handlers: dict[type, Callable[[Message], list[Message]]] = {
            SubscribePresence: self._subscribe_presence,
            UnsubscribePresence: self._unsubscribe_presence,
            SetPresence: self._set_presence,
            SubscribeProfile: self._subscribe_profile,
            UnsubscribeProfile: self._unsubscribe_profile,
            AddProfile: self._add_profile,
            DelProfile: self._del_profile,
            UpdateProfile: self._update_profile,
            AddProfileContact: self._add_contact,
            DelProfileContact: self._del_contact,
            UpdateProfileContact: self._update_contact,
            GetNodeInfo: self._node_info,
        }
        if favourites:  # the App object's first profile, as configured
            profile = self._new_profile("Favourites")
            for fav in favourites:
                self._contact(profile, fav.name, fav.num, fav.dsp, fav.presence, fav.dialog)

    def reset_subscriptions(self) -> None:
        self._presence_subs.clear()
        self._profile_sub = (False, None)

    def handle(self, msg: Message) -> list[Message] | None:
        """Messages to send for ``msg``; None if it is not a PbxApi request."""
        handler = self._handlers.get(type(msg))
        return handler(msg) if handler else None

    # --- presence ----------------------------------------------------------------------

    def _user(self, sip: str | None, num: str | None = None, guid: str | None = None):
        for user in self.users:
            if (
                (sip and user.sip == sip)
                or (num and user.num == num)
                or (guid and user.guid == guid)
            ):
                return user
        return None

    def _subscribe_presence(self, msg: SubscribePresence) -> list[Message]:
        user = self._user(msg.sip, msg.num)
        out: list[Message] = [msg.reply(SubscribePresenceResult)]
        if user is None:
            out.append(msg.reply(PresenceState, up=False, sip=msg.sip or "", num=msg.num or ""))
            return out
        self._presence_subs[user.sip] = msg.src
        out.append(
            msg.reply(
                PresenceState, up=True, sip=user.sip, num=user.num, dn=user.dn, email=user.email
            )
        )
        out.append(msg.reply(PresenceUpdate, presence=self.presence.get(user.sip, [])))
        return out

    def _unsubscribe_presence(self, msg: UnsubscribePresence) -> list[Message]:
        user = self._user(msg.sip, msg.num)
        if user is not None:
            self._presence_subs.pop(user.sip, None)
        return [msg.reply(UnsubscribePresenceResult)]

    def _set_presence(self, msg: SetPresence) -> list[Message]:
        user = self._user(msg.sip, guid=msg.guid)
        if user is None:
            return [msg.reply(SetPresenceResult, error=1, error_text="unknown user")]
        entry = Presence(contact=msg.contact, status="open", activity=msg.activity, note=msg.note)
        others = [p for p in self.presence.get(user.sip, []) if p.contact != msg.contact]
        self.presence[user.sip] = [entry, *others]  # newest first
        out: list[Message] = [msg.reply(SetPresenceResult)]
        if user.sip in self._presence_subs:
            out.append(
                PresenceUpdate(src=self._presence_subs[user.sip], presence=self.presence[user.sip])
            )
        return out

    # --- profiles ------------------------------------------------------------------------

    def _first_profile(self) -> _Profile | None:
        return self.profiles[min(self.profiles)] if self.profiles else None

    def _indicate(self, cls: type, profile: _Profile, contact: Contact) -> list[Message]:
        subscribed, src = self._profile_sub
        first = self._first_profile()
        if not subscribed or first is None or first.id != profile.id:
            return []
        return [cls(src=src, profile=ProfileContactRef(id=profile.id, contact=contact))]

    def _subscribe_profile(self, msg: SubscribeProfile) -> list[Message]:
        self._profile_sub = (True, msg.src)
        first = self._first_profile()
        return [msg.reply(SubscribeProfileResult, profile=first.view() if first else None)]

    def _unsubscribe_profile(self, msg: UnsubscribeProfile) -> list[Message]:
        self._profile_sub = (False, None)
        return [msg.reply(UnsubscribeProfileResult)]

    def _new_profile(self, name: str, wanted_id: int | None = None) -> _Profile:
        pid = wanted_id if wanted_id is not None else self._next_profile
        self._next_profile = max(self._next_profile, pid + 1)
        profile = self.profiles[pid] = _Profile(pid, name)
        return profile

    def _add_profile(self, msg: AddProfile) -> list[Message]:
        return [msg.reply(AddProfileResult, id=self._new_profile(msg.name).id)]

    def _del_profile(self, msg: DelProfile) -> list[Message]:
        if self.profiles.pop(msg.id, None) is None:
            return [msg.reply(DelProfileResult, error=1)]
        return [msg.reply(DelProfileResult)]

    def _update_profile(self, msg: UpdateProfile) -> list[Message]:
        profile = self.profiles.get(msg.id)
        if profile is None:
            return [msg.reply(UpdateProfileResult, error=1)]
        profile.name = msg.name
        return [msg.reply(UpdateProfileResult)]

    def _add_contact(self, msg: AddProfileContact) -> list[Message]:
        profile = self.profiles.get(msg.id) or self._new_profile(msg.name or "", msg.id)
        given = msg.contact
        contact = Contact(
            id=self._next_contact,
            name=given.name or given.dn,
            dn=given.dn,
            sip=given.sip,
            num=given.num,
            dsp=given.dsp or given.dn,
            presence=False,
            dialog=False,
        )
        self._next_contact += 1
        profile.contacts.append(contact)
        return [
            msg.reply(AddProfileContactResult),
            *self._indicate(ProfileContactAdded, profile, contact),
        ]

    def _contact(
        self, profile: _Profile, name: str, num: str, dsp: str, presence: bool, dialog: bool
    ) -> Contact:
        contact = Contact(
            id=self._next_contact,
            name=name,
            num=num,
            dsp=dsp or name,
            presence=presence,
            dialog=dialog,
        )
        self._next_contact += 1
        profile.contacts.append(contact)
        return contact

    # --- driven by the test or demo (Simulator / ``provd sim ctl``) ----------------------

    def add_favourite(
        self,
        name: str = "",
        num: str = "",
        dsp: str = "",
        *,
        presence: bool = False,
        dialog: bool = False,
    ) -> tuple[Contact, list[Message]]:
        """Add a favourite to the App object's first profile (created if there is none),
        as an administrator would in the PBX; returns it and the indications to send."""
        profile = self._first_profile() or self._new_profile("Favourites")
        contact = self._contact(profile, name, num, dsp, presence, dialog)
        return contact, self._indicate(ProfileContactAdded, profile, contact)

    def remove_favourite(self, contact_id: int) -> list[Message] | None:
        """Delete a favourite of the first profile; None if it has no such favourite."""
        profile = self._first_profile()
        found = profile and next((c for c in profile.contacts if c.id == contact_id), None)
        if profile is None or not found:
            return None
        profile.contacts.remove(found)
        return self._indicate(ProfileContactDeleted, profile, Contact(id=found.id))

    def favourites(self) -> list[Contact]:
        profile = self._first_profile()
        return list(profile.contacts) if profile else []

    def set_node(self, **changes: str) -> NodeInfo:
        """Change what GetNodeInfo answers (PbxApi has no indication for it: provd sees
        the change on its next GetNodeInfo)."""
        self.node = attrs.evolve(self.node, **changes)
        return self.node

    def _del_contact(self, msg: DelProfileContact) -> list[Message]:
        profile = self.profiles.get(msg.id)
        found = profile and next((c for c in profile.contacts if c.id == msg.contact.id), None)
        if profile is None or not found:
            return [msg.reply(DelProfileContactResult, error=1)]
        profile.contacts.remove(found)
        return [
            msg.reply(DelProfileContactResult),
            *self._indicate(ProfileContactDeleted, profile, Contact(id=found.id)),
        ]

    def _update_contact(self, msg: UpdateProfileContact) -> list[Message]:
        profile = self.profiles.get(msg.id)
        if profile is None:
            return [msg.reply(UpdateProfileContactResult, error=1)]
        for i, contact in enumerate(profile.contacts):
            if contact.id == msg.contact.id:
                changes = {
                    k: v
                    for k, v in attrs.asdict(msg.contact, recurse=False).items()
                    if v is not None and k != "id"
                }
                profile.contacts[i] = attrs.evolve(contact, **changes)
                return [msg.reply(UpdateProfileContactResult)]
        return [msg.reply(UpdateProfileContactResult, error=1)]

    # --- node info -----------------------------------------------------------------------

    def _node_info(self, msg: GetNodeInfo) -> list[Message]:
        n = self.node
        return [
            msg.reply(
                GetNodeInfoResult,
                name=n.name,
                prefix_intl=n.prefix_intl,
                prefix_ntl=n.prefix_ntl,
                prefix_subs=n.prefix_subs,
                country_code=n.country_code,
            )
        ]
