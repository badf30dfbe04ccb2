"""What the store hands out: plain frozen values, never rows or connections."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import frozen


@frozen(kw_only=True)
class PhoneRecord:
    mac: str
    code: str
    hwid: str = ""
    usename: str = ""
    cn: str = ""
    password: str = attrs.field(default="", repr=False)
    domain: str = ""
    dns: str = ""
    sysclient_password: str = attrs.field(default="", repr=False)
    admin_password: str = attrs.field(default="", repr=False)
    #: provd's own random web/admin password for the phone, used until Devices deploys one.
    web_password: str = attrs.field(default="", repr=False)
    state: str = "pending"
    error: str = ""
    online: bool = False
    revision: int = 0
    created: float = 0.0
    updated: float = 0.0
    #: Configuration items by type, verbatim as Devices sent them.
    config: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: Function keys: the Devices category whose operator keys apply, and the phone's own
    #: keys (``{"kind","target","label"}`` each), from ``provd phones keys``.
    key_category: str = ""
    keys: tuple[dict[str, str], ...] = attrs.field(default=(), converter=tuple)
    #: The provisioning code the stored sysclient password was assigned for (or answered).
    password_code: str = ""

    @property
    def assigned(self) -> bool:
        """Devices gave this phone a password: reconnect with the challenge, not the code."""
        return bool(self.sysclient_password)

    @property
    def code_pending(self) -> bool:
        """A provisioning code Devices has not answered yet: identify with it (keeping any
        stored password for a challenge) until a new password is committed."""
        return bool(self.code) and self.code != self.password_code


#: Lifecycle states in order: ``pending`` (stored, Devices not done), ``provisioned``
#: (Devices admitted it and sent its configuration), ``fetched`` (it got its file),
#: ``registered`` (the PBX shows its registration, PbxAdminApi ``GetRegs``).
LIFECYCLE_STATES = ("pending", "provisioned", "fetched", "registered")


@frozen(kw_only=True)
class Lifecycle:
    """Where a phone is on its way to a working registration, with when each step
    happened (UNIX seconds; 0 = not yet) and the last error (log-safe)."""

    mac: str
    state: str = "pending"
    #: When the phone entered ``state``.
    since: float = 0.0
    provisioned_at: float = 0.0
    #: The last fetch of its file.
    fetched_at: float = 0.0
    #: When the PBX was first seen showing its registration (since it last registered).
    registered_at: float = 0.0
    #: The last answer from the PBX about it (GetRegs).
    checked_at: float = 0.0
    #: The address of its registration, as the PBX shows it.
    addr: str = ""
    error: str = ""
    #: The "fetched but not registered" warning was logged (cleared once it registers).
    warned: bool = False
