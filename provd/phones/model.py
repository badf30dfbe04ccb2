"""What the phone side needs to know about one phone: the contract between store and renderers.

The store builds a :class:`PhoneData` from what it persisted (the ``ProvisioningPhone``
request, the decrypted password, the configuration items Devices sent). Renderers and the
HTTP server see only this, never the database, so they can be tested with plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

if TYPE_CHECKING:
    from provd.phones.keys import Key


def _freeze_config(items: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return {str(k): dict(v) for k, v in items.items()}


@frozen(kw_only=True)
class PhoneData:
    """One provisioned phone as provd stored it.

    Attributes:
        mac: 12 lowercase hex digits, no separators.
        hwid: Hardware ID of the device object the Users service created on the PBX user;
            it is the SIP authentication user.
        usename: the PBX user name (``usename`` is the wire spelling).
        cn: the user's display name.
        password: the user's SIP password, decrypted.
        domain: the PBX domain.
        dns: the PBX DNS name or address: the SIP registrar.
        config: configuration items from Devices keyed by their ``type``
            (``PHONE``, ``MEDIA``, ``NTP``, ``TLS_PROFILE``, ...), each the item's JSON object
            as received, except that ``MEDIA.turnPassword`` is already decrypted.
        revision: increases whenever anything above changes; render caches key on it.
        admin_password: the phone's web/admin password: the administrative password Devices
            deployed (sysclient ``0x0003``), else the random one provd generated for it.
        admin_password_source: ``"devices"`` or ``"provd"`` (for ``provd render --explain``).
        keys: the phone's own function keys (``provd phones keys``); empty: its category's.
        key_category: the Devices category whose operator keys apply (``provd phones keys
            MAC --category``); empty: the ``"*"`` keys.
    """

    mac: str
    hwid: str
    usename: str
    cn: str
    password: str
    domain: str
    dns: str
    config: Mapping[str, Mapping[str, Any]] = field(factory=dict, converter=_freeze_config)
    revision: int = 0
    admin_password: str = ""
    admin_password_source: str = ""
    keys: tuple[Key, ...] = ()
    key_category: str = ""
