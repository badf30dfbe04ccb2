"""PbxAdminApi as the simulated PBX serves it on the App-object connection, sans-I/O (spec 8.4).

What it holds, as a PBX's database and registrar would:

- **user objects** (``guid``, ``cn``, ``dn``, ``h323``, ``e164``, ``devices`` and any further
  property an ``UpdateObject`` set), from ``[[pbx.users]]`` and from the Users service,
  which creates the object of a phone's user and its device entry with *TLS only* and
  *reverse proxy* set (spec 8.4) before it sends ``ProvisioningPhone``;
- **registrations** per object (``{hw, addr}``): tests, the demo and ``provd sim ctl`` add
  and remove them, and a simulated phone registers after it fetched its file unless its
  per-MAC knob (``[[pbx.registrations]]``, :meth:`PbxAdminState.set_rule`) says it never
  does, or from which address.

Messages follow the SDK's ``doc/appwebsocket/PbxAdminApi.htm`` (13r1): ``GetRegs {guid |
cn}`` → ``GetRegsResult {cn, regs}``; ``GetObject {guid | cn}`` → ``GetObjectResult``;
``UpdateObject {guid, ...}`` changes only the properties present, ``devices`` replaces the
whole list; ``guid`` ``"*"`` means "find it by ``cn``", ``"?"`` "by ``cn``, or create it".
An unknown object is answered as ``pbx.admin_not_found`` says (the SDK is silent).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import attrs

from ..protocol import normalize_mac
from ..protocol.messages import (
    GetObject,
    GetObjectResult,
    GetRegs,
    GetRegsResult,
    Message,
    PbxDevice,
    Reg,
    UpdateObject,
    UpdateObjectResult,
    same_hw,
)
from .config import PbxConfig, PhoneRegistration

_FIELDS = ("cn", "dn", "h323", "e164")
#: The names :meth:`PbxAdminState.find` looks objects up by (besides the guid).
_LOOKUP = ("cn", "h323", "e164")
#: Bumped whenever a looked-up name of an existing object changes (the lookup index of
#: every :class:`PbxAdminState` is then rebuilt on its next use).
_renamed = [0]


def _note_rename(instance: Any, attribute: attrs.Attribute, value: Any) -> Any:
    if attribute.name in _LOOKUP and getattr(instance, attribute.name, value) != value:
        _renamed[0] += 1
    return value


@attrs.define(on_setattr=_note_rename)
class PbxObject:
    guid: str
    cn: str
    dn: str = ""
    h323: str = ""
    e164: str = ""
    devices: list[PbxDevice] = attrs.field(factory=list)
    #: Further properties (set by UpdateObject or configured), returned by GetObject.
    extra: dict[str, Any] = attrs.field(factory=dict)
    regs: list[Reg] = attrs.field(factory=list)

    def device(self, hw: str) -> PbxDevice | None:
        return next((d for d in self.devices if same_hw(d.hw, hw)), None)


class PbxAdminState:
    """The PBX's objects and registrations.

    Args:
        config: the ``[pbx]`` section (users, per-MAC registration knobs, error shapes).
        on_change: called after every change (the shell wakes watchers with it).
    """

    def __init__(
        self, config: PbxConfig | None = None, *, on_change: Callable[[], None] = lambda: None
    ):
        self.config = config or PbxConfig()
        self.on_change = on_change
        self.objects: dict[str, PbxObject] = {}
        #: MAC → (object guid, hw) of phones the Users service provisioned.
        self.phones: dict[str, tuple[str, str]] = {}
        #: Per-MAC registration knobs.
        self.rules: dict[str, PhoneRegistration] = {
            normalize_mac(r.mac): r for r in self.config.registrations
        }
        #: Every request handled, as ``(mt, request)`` (tests read what provd asked).
        self.requests: list[Message] = []
        #: name -> value -> guid of the first object with it, in ``objects`` order (issue 14:
        #: a scan per phone made provisioning 10,000 phones quadratic); valid while no
        #: object was renamed (``_renamed``) and ``objects`` changed only through
        #: :meth:`_add` (its length is checked).
        self._index: dict[str, dict[str, str]] | None = None
        self._index_renamed = 0
        self._index_count = 0
        for user in self.config.users:
            obj = PbxObject(
                guid=user.guid or secrets.token_hex(16),
                cn=user.cn or user.dn or user.sip,
                dn=user.dn,
                h323=user.sip,
                e164=user.num,
                devices=[
                    PbxDevice(hw=d.hw, text=d.text or None, tls=d.tls, trusted=d.trusted)
                    for d in user.devices
                ],
            )
            self.objects[obj.guid] = obj

    # --- lookups ---------------------------------------------------------------------------

    def find(
        self,
        *,
        guid: str | None = None,
        cn: str | None = None,
        h323: str | None = None,
        e164: str | None = None,
    ) -> PbxObject | None:
        """The object named by ``guid``, else ``cn``, else ``h323``, else ``e164``."""
        if guid:
            return self.objects.get(guid)
        for key, value in (("cn", cn), ("h323", h323), ("e164", e164)):
            if value:
                obj = self.objects.get(self._lookup_index()[key].get(value, ""))
                if obj is not None and getattr(obj, key) != value:  # replaced behind our back
                    self._index = None
                    obj = self.objects.get(self._lookup_index()[key].get(value, ""))
                return obj
        return None

    def _lookup_index(self) -> dict[str, dict[str, str]]:
        index = self._index
        if (
            index is None
            or self._index_renamed != _renamed[0]
            or self._index_count != len(self.objects)
        ):
            index = {key: {} for key in _LOOKUP}
            for obj in self.objects.values():
                for key in _LOOKUP:
                    index[key].setdefault(getattr(obj, key), obj.guid)
            self._index, self._index_renamed = index, _renamed[0]
            self._index_count = len(self.objects)
        return index

    def _add(self, obj: PbxObject) -> None:
        """Add a new object, keeping the lookup index current."""
        index = self._lookup_index()
        self.objects[obj.guid] = obj
        for key in _LOOKUP:
            index[key].setdefault(getattr(obj, key), obj.guid)
        self._index_count = len(self.objects)

    def locate(self, mac: str) -> tuple[PbxObject, str] | None:
        """The object and hw id of the phone ``mac``: as the Users service provisioned it,
        else the first device entry whose hw is the MAC."""
        mac = normalize_mac(mac)
        known = self.phones.get(mac)
        if known and known[0] in self.objects:
            return self.objects[known[0]], known[1]
        for obj in self.objects.values():
            device = obj.device(mac)
            if device is not None:
                return obj, device.hw
        return None

    # --- driving it (Users service, simulated phones, tests, sim ctl) ------------------------

    def ensure_user(self, *, mac: str, cn: str, h323: str, hw: str, text: str = "") -> PbxObject:
        """What the Users service does before ``ProvisioningPhone``: the user object
        (created if missing) gets a device entry for ``hw`` with *TLS only* and *reverse
        proxy* set (spec 8.4); the phone ``mac`` is remembered as that device."""
        obj = self.find(cn=cn) or self.find(h323=h323)
        if obj is None:
            obj = PbxObject(guid=secrets.token_hex(16), cn=cn, dn=cn, h323=h323)
            self._add(obj)
        if obj.device(hw) is None:
            obj.devices.append(PbxDevice(hw=hw, text=text or None, tls=True, trusted=True))
        self.phones[normalize_mac(mac)] = (obj.guid, hw)
        self.on_change()
        return obj

    def set_rule(self, mac: str, *, register: bool = True, addr: str = "") -> None:
        """Knob: whether (and from where) the phone ``mac`` registers after a fetch."""
        mac = normalize_mac(mac)
        self.rules[mac] = PhoneRegistration(mac=mac, register=register, addr=addr)

    def phone_fetched(self, mac: str) -> Reg | None:
        """A simulated phone got its file: it registers as its knob says. Returns the
        registration, or None (never registers, or no user object has its device)."""
        rule = self.rules.get(normalize_mac(mac))
        if rule is not None and not rule.register:
            return None
        return self.register(mac, addr=rule.addr if rule else "")

    def register(self, mac: str, *, addr: str = "") -> Reg | None:
        """The phone ``mac`` registers (again) from ``addr`` (default ``pbx.register_addr``).
        None if no user object has its device."""
        found = self.locate(mac)
        if found is None:
            return None
        obj, hw = found
        reg = Reg(hw=hw, addr=addr or self.config.register_addr)
        obj.regs = [r for r in obj.regs if not same_hw(r.hw, hw)] + [reg]
        self.on_change()
        return reg

    def unregister(self, mac: str) -> bool:
        """The phone ``mac``'s registration ends. False if it had none."""
        found = self.locate(mac)
        if found is None:
            return False
        obj, hw = found
        kept = [r for r in obj.regs if not same_hw(r.hw, hw)]
        removed = len(kept) != len(obj.regs)
        obj.regs = kept
        self.on_change()
        return removed

    def registration(self, mac: str) -> Reg | None:
        found = self.locate(mac)
        if found is None:
            return None
        obj, hw = found
        return next((r for r in obj.regs if same_hw(r.hw, hw)), None)

    # --- the API -------------------------------------------------------------------------

    def handle(self, msg: Message) -> list[Message] | None:
        """Messages to send for ``msg``; None if it is not a PbxAdminApi request."""
        if isinstance(msg, GetRegs):
            self.requests.append(msg)
            return [self._get_regs(msg)]
        if isinstance(msg, GetObject):
            self.requests.append(msg)
            return [self._get_object(msg)]
        if isinstance(msg, UpdateObject):
            self.requests.append(msg)
            return [self._update_object(msg)]
        return None

    def _not_found(self, msg: Message, cls: type[Message], **fields: Any) -> Message:
        if self.config.admin_not_found == "empty":
            return msg.reply(cls, **fields)
        if self.config.numeric_errors:
            return msg.reply(cls, error=1, error_text="object not found", **fields)
        return msg.reply(cls, error="object not found", **fields)

    def _get_regs(self, msg: GetRegs) -> Message:
        obj = self.find(guid=msg.guid, cn=msg.cn)
        if obj is None:
            return self._not_found(msg, GetRegsResult, cn=msg.cn or "")
        return msg.reply(GetRegsResult, cn=obj.cn, regs=tuple(obj.regs))

    def _get_object(self, msg: GetObject) -> Message:
        obj = self.find(guid=msg.guid, cn=msg.cn, h323=msg.h323, e164=msg.e164)
        if obj is None:
            return self._not_found(msg, GetObjectResult)
        return msg.reply(
            GetObjectResult,
            guid=obj.guid,
            cn=obj.cn,
            dn=obj.dn,
            h323=obj.h323,
            e164=obj.e164,
            devices=tuple(obj.devices),
            extra=dict(obj.extra),
        )

    def _update_object(self, msg: UpdateObject) -> Message:
        if msg.guid in ("*", "?"):
            obj = self.find(cn=msg.cn)
            if obj is None and msg.guid == "?" and msg.cn:
                obj = PbxObject(guid=secrets.token_hex(16), cn=msg.cn)
                self._add(obj)
        else:
            obj = self.find(guid=msg.guid)
        if obj is None:
            return self._not_found(msg, UpdateObjectResult)
        for key in _FIELDS:
            value = getattr(msg, key)
            if value is not None:
                setattr(obj, key, value)
        if msg.devices is not None:
            obj.devices = list(msg.devices)
        obj.extra.update(msg.extra)
        self.on_change()
        return msg.reply(UpdateObjectResult)
