"""PbxApi on the PBX App-object connection: presence, favourites, node info (spec section 7).

Every operation ``<Op>`` is answered by ``<Op>Result``; subscriptions add indications.
Profiles belong to the user of the connection (on the App-object connection: the App object).
"""

from __future__ import annotations

import attrs

from ._codec import Message, message, record, wire

PBX_API = "PbxApi"


@record
class Presence:
    contact: str = ""
    status: str = ""
    activity: str = ""
    note: str = ""


@record
class Contact:
    """A favourite. New ones carry ``dn``/``sip``/``num``; listed ones ``id``/``name``/``dsp``..."""

    id: int | None = None
    name: str | None = None
    dn: str | None = None
    sip: str | None = None
    num: str | None = None
    dsp: str | None = None
    presence: bool | None = None
    dialog: bool | None = None
    ext: str | None = None


@record
class Profile:
    id: int
    name: str = ""
    contacts: tuple[Contact, ...] = attrs.field(default=(), converter=tuple)


@record
class ProfileContactRef:
    """``{"id": profile, "contact": {...}}`` as carried by the contact indications."""

    id: int
    contact: Contact


# --- presence ---------------------------------------------------------------------------


@message("SubscribePresence", api=PBX_API)
class SubscribePresence(Message):
    sip: str | None = None
    num: str | None = None


@message("SubscribePresenceResult", api=PBX_API)
class SubscribePresenceResult(Message):
    error: int | None = None
    error_text: str | None = wire("errorText", default=None)


@message("PresenceState", api=PBX_API)
class PresenceState(Message):
    up: bool = False
    sip: str = ""
    num: str = ""
    dn: str = ""
    email: str = ""


@message("PresenceUpdate", api=PBX_API)
class PresenceUpdate(Message):
    """Newest first."""

    presence: tuple[Presence, ...] = attrs.field(default=(), converter=tuple)


@message("UnsubscribePresence", api=PBX_API)
class UnsubscribePresence(Message):
    sip: str | None = None
    num: str | None = None


@message("UnsubscribePresenceResult", api=PBX_API)
class UnsubscribePresenceResult(Message):
    pass


@message("SetPresence", api=PBX_API)
class SetPresence(Message):
    sip: str | None = None
    guid: str | None = None
    contact: str = ""
    activity: str = ""
    note: str = ""


@message("SetPresenceResult", api=PBX_API)
class SetPresenceResult(Message):
    error: int | None = None
    error_text: str | None = wire("errorText", default=None)


# --- profiles ---------------------------------------------------------------------------


@message("SubscribeProfile", api=PBX_API)
class SubscribeProfile(Message):
    pass


@message("SubscribeProfileResult", api=PBX_API)
class SubscribeProfileResult(Message):
    profile: Profile | None = None


@message("ProfileContactAdded", api=PBX_API)
class ProfileContactAdded(Message):
    profile: ProfileContactRef


@message("ProfileContactDeleted", api=PBX_API)
class ProfileContactDeleted(Message):
    profile: ProfileContactRef


@message("UnsubscribeProfile", api=PBX_API)
class UnsubscribeProfile(Message):
    pass


@message("UnsubscribeProfileResult", api=PBX_API)
class UnsubscribeProfileResult(Message):
    pass


@message("AddProfile", api=PBX_API)
class AddProfile(Message):
    name: str


@message("AddProfileResult", api=PBX_API)
class AddProfileResult(Message):
    id: int | None = None
    error: int | None = None


@message("DelProfile", api=PBX_API)
class DelProfile(Message):
    id: int


@message("DelProfileResult", api=PBX_API)
class DelProfileResult(Message):
    error: int | None = None


@message("UpdateProfile", api=PBX_API)
class UpdateProfile(Message):
    id: int
    name: str


@message("UpdateProfileResult", api=PBX_API)
class UpdateProfileResult(Message):
    error: int | None = None


@message("AddProfileContact", api=PBX_API)
class AddProfileContact(Message):
    """Adds a favourite; creates the profile if it does not exist."""

    id: int
    contact: Contact
    name: str | None = None


@message("AddProfileContactResult", api=PBX_API)
class AddProfileContactResult(Message):
    error: int | None = None


@message("DelProfileContact", api=PBX_API)
class DelProfileContact(Message):
    id: int
    contact: Contact


@message("DelProfileContactResult", api=PBX_API)
class DelProfileContactResult(Message):
    error: int | None = None


@message("UpdateProfileContact", api=PBX_API)
class UpdateProfileContact(Message):
    id: int
    contact: Contact


@message("UpdateProfileContactResult", api=PBX_API)
class UpdateProfileContactResult(Message):
    error: int | None = None


# --- node info --------------------------------------------------------------------------


@message("GetNodeInfo", api=PBX_API)
class GetNodeInfo(Message):
    pass


@message("GetNodeInfoResult", api=PBX_API)
class GetNodeInfoResult(Message):
    name: str = ""
    prefix_intl: str = ""
    prefix_ntl: str = ""
    prefix_subs: str = ""
    country_code: str = ""
