"""``com.innovaphone.provisioning``: the API provd publishes (spec section 4)."""

from __future__ import annotations

import re

from ._codec import Message, message

PROVISIONING_API = "com.innovaphone.provisioning"


@message("ProvisioningPhone")
class ProvisioningPhone(Message):
    """One phone to provision, sent by the Users/Profile service.

    ``password`` is encrypted with ``seed1`` and the session key of the connection it
    arrived on; a ``seed1`` shorter than two characters means it is not encrypted.
    ``usename`` is the wire spelling.
    """

    mac: str
    code: str
    hwid: str = ""
    usename: str = ""
    cn: str = ""
    seed1: str = ""
    password: str = ""
    domain: str = ""
    dns: str = ""

    @property
    def password_encrypted(self) -> bool:
        return len(self.seed1) > 1


@message("ProvisioningPhoneResult")
class ProvisioningPhoneResult(Message):
    """``result`` is ``"ok"`` or ``"error"``; ``error`` says why (provd's choice)."""

    result: str
    error: str | None = None


#: Longest accepted text member of ``ProvisioningPhone``, characters. Real values are short
#: (a 12-digit code, a user name, a DNS name); the bound keeps a peer from parking megabytes
#: in the database.
MAX_MEMBER = 256
#: Longest ``seed1`` (innovaphone seeds are about 23 digits).
MAX_SEED = 64
#: Longest encrypted ``password``: hex of RC4 output, two characters per plaintext byte.
MAX_PASSWORD_HEX = 2 * MAX_MEMBER

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def provisioning_phone_problem(msg: ProvisioningPhone) -> str | None:
    """Why ``msg`` cannot be stored (a log-safe sentence), or None if its sizes are sane.

    Checks lengths and shapes only; the MAC (12 hex digits, at most 32 characters with
    separators) is checked by :func:`provd.protocol.normalize_mac` in the caller.
    """
    for name in ("code", "hwid", "usename", "cn", "domain", "dns"):
        if len(getattr(msg, name)) > MAX_MEMBER:
            return f"{name}: longer than {MAX_MEMBER} characters"
    if len(msg.seed1) > MAX_SEED:
        return f"seed1: longer than {MAX_SEED} characters"
    if msg.password_encrypted:
        if len(msg.password) > MAX_PASSWORD_HEX:
            return f"password: longer than {MAX_PASSWORD_HEX} hex characters"
        if not _HEX.fullmatch(msg.password):
            return "password: not hex"
    elif len(msg.password) > MAX_MEMBER:
        return f"password: longer than {MAX_MEMBER} characters"
    return None
