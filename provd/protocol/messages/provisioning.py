"""``com.innovaphone.provisioning``: the API provd publishes (spec section 4)."""

from __future__ import annotations

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
