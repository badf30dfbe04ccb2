"""PbxAdminApi on the PBX App-object connection: registrations and user objects (spec 8.4).

From the innovaphone SDK 13r1, ``doc/appwebsocket/PbxAdminApi.htm``: "The PbxAdminApi
protocol is available on AppWebsocket connections to innovaphone PBX objects, if the object
is enabled for the PbxAdminApi"; every operation ``<name>`` is answered by ``<name>Result``.

- ``GetRegs {guid | cn}`` → ``GetRegsResult {regs: [reg], cn}``, ``reg = {hw, addr}``: "the
  hw id of the device used for the registration" and its address.
- ``GetObject {guid | cn}`` → ``GetObjectResult {guid, cn, dn, h323, e164, ..., devices:
  [device]}``, ``device = {hw, text, app, admin, no-filter, tls, no-mob, trusted}``
  (``tls``: "Only registration with verified TLS certificate, or from trusted RP allowed";
  ``trusted``: "Registration from trusted reverse proxy allowed"). Spec 8.4 also names
  ``h323`` and ``e164`` as keys; provd sends them only when asked to.
- ``UpdateObject {guid, ...}``: "Any property present in the message updates the respective
  information of the PBX object. Properties not present are left unchanged", and
  ``devices`` is the whole array → ``UpdateObjectResult``, sent "when the object is
  updated, which means it is written to the database and the update is in effect".

The SDK documents no error member for these results; as for the other PBX answers (spec
8.3) provd accepts ``error`` as a number or a text, with ``errorText``. Where the SDK is
silent about an unknown object, provd reads a ``GetObjectResult`` without ``guid`` as "no
such object".

Device entries and registrations keep the members provd does not know (``extra``): a
device read with ``GetObject`` goes back in ``UpdateObject`` with all of them.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._codec import Message, message, record, rest, wire

PBX_ADMIN_API = "PbxAdminApi"

#: A boolean property; ``UpdateObject`` accepts an integer (e.g. -1) to delete it (SDK:
#: "the parameter is deleted, which means the value inherited from a config template is
#: used"), so an integer is accepted when read too.
Flag = bool | int | None


def _failure(error: int | str | None, error_text: str | None) -> str | None:
    """A log-safe description of an error reply, or None when there was none."""
    if not error and not error_text:
        return None
    if error_text and error and not isinstance(error, str):
        return f"{error_text} (error {error})"
    if isinstance(error, str) and error:
        return error
    return error_text or f"error {error}"


def same_hw(a: str, b: str) -> bool:
    """Hardware ids compared as the PBX shows them: case-insensitive, separators ignored
    (``00:15:65:AA:00:01`` = ``001565aa0001``)."""

    def norm(hw: str) -> str:
        return "".join(c for c in hw.lower() if c not in ":-. ")

    return bool(a) and norm(a) == norm(b)


@record
class Reg:
    """One current registration of an object (``GetRegsResult.regs``)."""

    hw: str = ""
    addr: str = ""
    extra: dict[str, Any] = rest()


@record
class PbxDevice:
    """One entry of an object's ``devices`` (the *Devices* tab of a user in the PBX)."""

    hw: str = ""
    text: str | None = None
    app: str | None = None
    admin: Flag = None
    no_filter: Flag = wire("no-filter", default=None)
    tls: Flag = None
    no_mob: Flag = wire("no-mob", default=None)
    trusted: Flag = None
    #: Members provd does not name, kept for a read-modify-write.
    extra: dict[str, Any] = rest()


@message("GetRegs", api=PBX_ADMIN_API)
class GetRegs(Message):
    """The current registrations of the object ``guid``, or if absent ``cn``."""

    guid: str | None = None
    cn: str | None = None


@message("GetRegsResult", api=PBX_ADMIN_API)
class GetRegsResult(Message):
    cn: str = ""
    regs: tuple[Reg, ...] = attrs.field(default=(), converter=tuple)
    error: int | str | None = None
    error_text: str | None = wire("errorText", default=None)

    @property
    def failure(self) -> str | None:
        return _failure(self.error, self.error_text)

    def find(self, hw: str) -> Reg | None:
        """The registration of the device ``hw`` (compared by :func:`same_hw`), if any."""
        return next((r for r in self.regs if same_hw(r.hw, hw)), None)


@message("GetObject", api=PBX_ADMIN_API)
class GetObject(Message):
    """The configuration of the object ``guid``, or if absent ``cn`` (or ``h323``/``e164``,
    spec 8.4)."""

    guid: str | None = None
    cn: str | None = None
    h323: str | None = None
    e164: str | None = None


@message("GetObjectResult", api=PBX_ADMIN_API)
class GetObjectResult(Message):
    """An object; members provd does not name (``pwd``, ``grp``, ``cds``...) are kept in
    ``extra`` and never logged (``pwd`` is an encrypted password)."""

    guid: str = ""
    cn: str = ""
    dn: str = ""
    h323: str = ""
    e164: str = ""
    devices: tuple[PbxDevice, ...] = attrs.field(default=(), converter=tuple)
    error: int | str | None = None
    error_text: str | None = wire("errorText", default=None)
    extra: dict[str, Any] = rest(repr=False)

    @property
    def failure(self) -> str | None:
        if self.error or self.error_text:
            return _failure(self.error, self.error_text)
        if not self.guid:
            return "no such object"
        return None

    def device(self, hw: str) -> PbxDevice | None:
        """The device entry for ``hw`` (compared by :func:`same_hw`), if any."""
        return next((d for d in self.devices if same_hw(d.hw, hw)), None)


@message("UpdateObject", api=PBX_ADMIN_API)
class UpdateObject(Message):
    """Change the object ``guid``: only the properties present change; ``devices`` replaces
    the whole list (read it with :class:`GetObject` first). ``extra``: further properties
    sent as given."""

    guid: str
    cn: str | None = None
    dn: str | None = None
    h323: str | None = None
    e164: str | None = None
    devices: tuple[PbxDevice, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )
    extra: dict[str, Any] = rest(repr=False)


@message("UpdateObjectResult", api=PBX_ADMIN_API)
class UpdateObjectResult(Message):
    guid: str | None = None
    error: int | str | None = None
    error_text: str | None = wire("errorText", default=None)

    @property
    def failure(self) -> str | None:
        return _failure(self.error, self.error_text)
