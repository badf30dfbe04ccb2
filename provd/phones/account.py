"""The innovaphone mapping, in one place: which PBX value goes into which SIP field.

The Users service creates a device object on the PBX user with Hardware ID = ``hwid``,
flagged *TLS only*. So the phone registers to ``dns`` in domain ``domain`` as user
``usename`` and authenticates as ``hwid`` with the user's password (phones.md, "What an
innovaphone PBX wants from the phone"). That is still an assumption to be confirmed by
captures, which is why vendor templates only ever see a :class:`SipAccount`: if the
mapping changes, only :meth:`SipAccount.from_phone` changes.
"""

from __future__ import annotations

from typing import Literal

from attrs import evolve, field, frozen, validators

from provd.phones.model import PhoneData

Transport = Literal["tls", "tcp"]

#: SIP transports provd offers, with the port each one uses on the PBX.
DEFAULT_PORTS: dict[str, int] = {"tls": 5061, "tcp": 5060}

#: What every secret becomes when rendering for humans (the operator CLI).
MASK = "********"


@frozen(kw_only=True)
class SipAccount:
    """SIP account 1 as every vendor template renders it.

    Attributes:
        registrar: registrar / SIP server host (the PBX DNS name).
        domain: SIP domain (the part after ``@`` in the AOR).
        user: SIP user name (the AOR user part).
        auth_user: authentication (digest) user name.
        password: authentication password, in clear (or :data:`MASK`).
        display_name: the caller name the phone sends.
        label: the line label shown on the phone.
        transport: ``"tls"`` or ``"tcp"``.
        port: registrar port.
    """

    registrar: str
    domain: str
    user: str
    auth_user: str
    password: str
    display_name: str
    label: str
    transport: str = field(default="tls", validator=validators.in_(tuple(DEFAULT_PORTS)))
    port: int = field(default=DEFAULT_PORTS["tls"], validator=validators.instance_of(int))

    @classmethod
    def from_phone(cls, phone: PhoneData, transport: str = "tls") -> SipAccount:
        """Build the account for ``phone`` registering over ``transport``.

        Raises:
            ValueError: ``transport`` is neither ``"tls"`` nor ``"tcp"``.
        """
        if transport not in DEFAULT_PORTS:
            raise ValueError(f"transport must be 'tls' or 'tcp', not {transport!r}")
        return cls(
            registrar=phone.dns,
            domain=phone.domain,
            user=phone.usename,
            auth_user=phone.hwid,
            password=phone.password,
            display_name=phone.cn,
            label=phone.cn or phone.usename,
            transport=transport,
            port=DEFAULT_PORTS[transport],
        )

    def masked(self) -> SipAccount:
        """The same account with the password replaced by :data:`MASK`."""
        return evolve(self, password=MASK)
