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
