"""What the simulated Devices app knows: domains, categories, codes, devices, passwords.

Pure (no I/O, injectable clock and randomness) so every rule of spec sections 5 and 6 can be
tested without sockets; the Devices API sessions, the sysclient server and the passthrough
shell all work on one :class:`DevicesDomain`, like one Devices instance on its database.

Rules where the spec is silent (our choices, see also ``etc/sim.toml``):

- A code binds to the first MAC that uses it. The same MAC may use it again while it is
  valid (a device whose connection dropped before it got its password retries) and gets a
  fresh password; another MAC is refused.
- ``DeviceProvisioned`` is raised once per code, on its first use.
- A device provisioned again (with a new code, same domain) moves to the code's category and
  gets a fresh password; its old password stops working.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from ..protocol import crypto
from ..protocol.messages import Category, Device
from ..protocol.sysclient import Identify, challenge_digest, encrypt_admin_password
from .config import CategoryConfig, DomainConfig

#: Code validity (spec section 5): 15 minutes, or 7 days with ``rollout``.
CODE_TTL = 15 * 60
ROLLOUT_TTL = 7 * 24 * 3600

PASSWORD_ALPHABET = string.ascii_letters + string.digits


def random_password(length: int = 32) -> str:
    """``length`` characters drawn uniformly from :data:`PASSWORD_ALPHABET` (one CSPRNG
    read, not one call per character: issue 14, the simulator's CPU per phone)."""
    n = len(PASSWORD_ALPHABET)
    limit = 256 - 256 % n  # bytes at or above it would favour the first characters
    chars: list[str] = []
    while len(chars) < length:
        chars += [PASSWORD_ALPHABET[b % n] for b in secrets.token_bytes(length + 8) if b < limit]
    return "".join(chars[:length])


def random_digits(length: int = 16) -> str:
    """``length`` uniformly random digits (a challenge or seed, as innovaphone uses), from
    one CSPRNG call."""
    return f"{secrets.randbelow(10**length):0{length}d}"


def random_code() -> str:
    """A 12-digit provisioning code, like ``562822784750``."""
    return f"{secrets.randbelow(10**12):012d}"


class DomainError(Exception):
    """A Devices API request cannot be served; ``str()`` is the API ``error`` text."""


class Refused(Exception):
    """A sysclient is refused; the Devices app closes its socket. ``reason`` is log-safe."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.define
class DomainRecord:
    id: int
    name: str
    admin_password: str = attrs.field(repr=False, default="")


@attrs.define
class CategoryRecord:
    id: int
    domain_id: int
    settings: CategoryConfig

    @property
    def name(self) -> str:
        return self.settings.name


@attrs.define
class CodeRecord:
    code: str
    domain_id: int
    category_id: int
    valid_until: float
    sip: str | None = None
    #: The API session (its login key) that asked for the code: gets DeviceProvisioned.
    owner: str | None = None
    #: The MAC that used the code, once used.
    mac: str | None = None


@attrs.define
class DeviceRecord:
    id: int
    mac: str
    domain_id: int
    category_id: int
    product: str = ""
    version: str = ""
    type: str = "PHONE"
    name: str = ""
    pbx_active: bool = False
    password: str = attrs.field(repr=False, default="")
    online: bool = False
    code: str | None = None


@attrs.frozen
class Admission:
    """A device admitted with a code. ``first_use``: raise DeviceProvisioned for ``code``."""

    device: DeviceRecord
    password: str = attrs.field(repr=False)
    code: CodeRecord
    first_use: bool


class DevicesDomain:
    """The state of one Devices instance.

    Args:
        domains: from the configuration; ids are assigned in order from 1.
        clock: UNIX seconds now (injectable for validity tests).
        on_change: called after every change (the shell wakes watchers with it).
    """

    def __init__(
        self,
        domains: tuple[DomainConfig, ...] | list[DomainConfig],
        *,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] = lambda: None,
        password_factory: Callable[[], str] = random_password,
        code_factory: Callable[[], str] = random_code,
        seed_factory: Callable[[], str] = random_digits,
    ) -> None:
        self.clock = clock
        self.on_change = on_change
        self.password_factory = password_factory
        self._new_code = code_factory
        #: Seeds for 0x0003 and MEDIA turnSeed (replaceable: ``Faults.seed_length``).
        self.seed_factory = seed_factory
        self.domains: dict[int, DomainRecord] = {}
        self.categories: dict[int, CategoryRecord] = {}
        self.codes: dict[str, CodeRecord] = {}
        self.devices: dict[str, DeviceRecord] = {}  # by MAC
        self.sessions: dict[str, int] = {}  # live login key -> domain id
        #: Every sysclient password ever issued, by MAC, oldest first (for tests).
        self.passwords_issued: dict[str, list[str]] = {}
        cat_id = 0
        for dom_id, dom in enumerate(domains, start=1):
            self.domains[dom_id] = DomainRecord(dom_id, dom.name, dom.admin_password)
            for cat in dom.categories:
                cat_id += 1
                self.categories[cat_id] = CategoryRecord(cat_id, dom_id, cat)
        self._next_device_id = 1

    # --- lookups ------------------------------------------------------------------------

    def domain_by_name(self, name: str) -> DomainRecord | None:
        return next((d for d in self.domains.values() if d.name == name), None)

    def category_by_name(self, domain_id: int, name: str) -> CategoryRecord | None:
        return next(
            (c for c in self.categories.values() if c.domain_id == domain_id and c.name == name),
            None,
        )

    def device_view(self, device: DeviceRecord, *, uri: str = "") -> Device:
        return Device(
            id=device.id,
            hw_id=device.mac,
            name=device.name,
            domain_id=device.domain_id,
            product=device.product,
            version=device.version,
            type=device.type,
            pbx_active=device.pbx_active,
            online=device.online,
            has_lease_licenses=False,
            uri=uri,
        )

    # --- API sessions ------------------------------------------------------------------

    def open_session(self, domain_name: str) -> tuple[str, int]:
        """A logged-in API session: its GUID key (valid while it lives) and domain id.

        A login names a PBX domain; one unknown to Devices maps to the first domain.
        """
        dom = self.domain_by_name(domain_name) or next(iter(self.domains.values()), None)
        if dom is None:
            raise DomainError("no domain configured")
        key = str(uuid.uuid4())
        self.sessions[key] = dom.id
        return key, dom.id

    def close_session(self, key: str) -> None:
        self.sessions.pop(key, None)

    def is_live_key(self, key: str) -> bool:
        return key in self.sessions

    def list_categories(self, domain_id: int, type: str | None = None) -> list[Category]:
        return [
            Category(id=c.id, name=c.name, domain_id=c.domain_id, config=c.settings.config)
            for c in self.categories.values()
            if c.domain_id == domain_id and (type is None or c.settings.type == type)
        ]

    def issue_code(
        self,
        *,
        domain_id: int,
        category: str,
        sip: str | None = None,
        rollout: bool = False,
        owner: str | None = None,
    ) -> CodeRecord:
        """A fresh code, valid 15 minutes (7 days with ``rollout``).

        Raises:
            DomainError: unknown domain or category, or a category not used for provisioning.
        """
        if domain_id not in self.domains:
            raise DomainError("unknown domain")
        cat = self.category_by_name(domain_id, category)
        if cat is None:
            raise DomainError("unknown category")
        if not cat.settings.config:
            raise DomainError("category not used for provisioning")
        code = self._new_code()
        while code in self.codes:
            code = self._new_code()
        ttl = ROLLOUT_TTL if rollout else CODE_TTL
        record = CodeRecord(code, domain_id, cat.id, self.clock() + ttl, sip=sip, owner=owner)
        self.codes[code] = record
        self.on_change()
        return record

    def provisioned_device(self, domain_id: int, code: str) -> DeviceRecord | None:
        """The device that used ``code``, if any. Raises DomainError for an unknown code."""
        record = self.codes.get(code)
        if record is None or record.domain_id != domain_id:
            raise DomainError("unknown code")
        return self.devices.get(record.mac) if record.mac else None

    def expire_codes(self, codes: list[str] | None = None) -> None:
        """Make ``codes`` (default: all) expired now."""
        now = self.clock()
        for code in codes if codes is not None else list(self.codes):
            if code in self.codes:
                self.codes[code].valid_until = now - 1
        self.on_change()

    # --- sysclients ----------------------------------------------------------------------

    def identify_with_code(self, ident: Identify) -> Admission:
        """First connect: admit the device into the code's domain and category.

        Raises:
            Refused: unknown or expired code, a code another MAC used, or a MAC that
                already belongs to another domain.
        """
        record = self.codes.get(ident.provisioning_code or "")
        if record is None:
            raise Refused("unknown provisioning code")
        if self.clock() > record.valid_until:
            raise Refused("provisioning code expired")
        if record.mac is not None and record.mac != ident.id:
            raise Refused("provisioning code used by another device")
        device = self.devices.get(ident.id)
        if device is not None and device.domain_id != record.domain_id:
            raise Refused("device belongs to another domain")
        if device is None:
            device = DeviceRecord(self._next_device_id, ident.id, record.domain_id, 0)
            self._next_device_id += 1
            self.devices[ident.id] = device
        device.category_id = record.category_id
        device.code = record.code
        self._describe(device, ident)
        password = self.password_factory()
        device.password = password
        self.passwords_issued.setdefault(ident.id, []).append(password)
        first_use = record.mac is None
        record.mac = ident.id
        self.on_change()
        return Admission(device, password, record, first_use)

    def challenge_for(self, ident: Identify) -> DeviceRecord:
        """Later connect without code: the device must be known and hold a password.

        Raises:
            Refused: an unknown (or unassigned) device.
        """
        device = self.devices.get(ident.id)
        if device is None or not device.password:
            raise Refused("unknown device")
        return device

    def verify_digest(self, ident: Identify, challenge: str) -> DeviceRecord:
        """Check the second identify's digest. Raises :class:`Refused` on a wrong one."""
        device = self.challenge_for(ident)
        expected = challenge_digest(ident, challenge, device.password)
        if not ident.digest or not crypto.digests_equal(expected, ident.digest):
            raise Refused("wrong digest")
        self._describe(device, ident)
        return device

    def reassign_password(self, mac: str) -> str:
        """A fresh sysclient password for a known device (an administrator added it to a
        domain during its session); the old one stops working. Raises KeyError."""
        device = self.devices[mac]
        password = self.password_factory()
        device.password = password
        self.passwords_issued.setdefault(mac, []).append(password)
        self.on_change()
        return password

    def set_online(self, mac: str, online: bool) -> None:
        device = self.devices.get(mac)
        if device is not None and device.online != online:
            device.online = online
            self.on_change()

    def _describe(self, device: DeviceRecord, ident: Identify) -> None:
        device.product = ident.product
        device.version = ident.version
        device.type = ident.platform_type
        device.name = ident.name or device.name
        pbx_active = ident.extra.get("pbxActive")
        device.pbx_active = pbx_active if isinstance(pbx_active, bool) else device.pbx_active

    # --- what a device is sent -----------------------------------------------------------

    def admin_password_body(self, device: DeviceRecord) -> dict[str, str] | None:
        """The 0x0003 body when the device's domain deploys an admin password."""
        plaintext = self.domains[device.domain_id].admin_password
        if not plaintext:
            return None
        return _encrypt(self.seed_factory(), plaintext, device.password)

    def config_items(self, device: DeviceRecord, types: set[str] | None = None) -> list[dict]:
        """The category's configuration items for ``device`` (only ``types`` if given).

        The TURN password is encrypted per device: fresh ``turnSeed``, key = its password.
        """
        settings = self.categories[device.category_id].settings
        items = [item for item in plain_items(settings) if types is None or item["type"] in types]
        for item in items:
            if item["type"] == "MEDIA" and item.get("turnPassword"):
                seed = self.seed_factory()
                item["turnSeed"] = seed
                if len(seed) > 1:  # else sent plain (tutorial: ``if (strlen(seed) > 1)``)
                    pwd = _encrypt(seed, item["turnPassword"], device.password)["pwd"]
                    item["turnPassword"] = pwd
        return items

    def update_category(self, domain_id: int, name: str, **changes: Any) -> set[str]:
        """Change a category's settings; returns the item types whose content changed.

        Raises:
            DomainError: unknown category; TypeError for an unknown setting.
        """
        cat = self.category_by_name(domain_id, name)
        if cat is None:
            raise DomainError("unknown category")
        before = {item["type"]: item for item in plain_items(cat.settings)}
        cat.settings = attrs.evolve(cat.settings, **changes)
        after = {item["type"]: item for item in plain_items(cat.settings)}
        self.on_change()
        return {t for t, item in after.items() if before.get(t) != item}

    # --- persistence (the CLI's optional state file) ---------------------------------------

    def to_json(self) -> dict[str, Any]:
        def names(domain_id: int, category_id: int) -> dict[str, str]:
            return {
                "domain": self.domains[domain_id].name,
                "category": self.categories[category_id].name,
            }

        return {
            "devices": [
                {
                    **attrs.asdict(
                        d, filter=lambda a, _v: a.name not in ("online", "domain_id", "category_id")
                    ),
                    **names(d.domain_id, d.category_id),
                }
                for d in self.devices.values()
            ],
            "codes": [
                {
                    **attrs.asdict(
                        c, filter=lambda a, _v: a.name not in ("domain_id", "category_id", "owner")
                    ),
                    **names(c.domain_id, c.category_id),
                }
                for c in self.codes.values()
            ],
        }

    def load_json(self, data: dict[str, Any]) -> None:
        """Restore devices and codes saved by :meth:`to_json`; entries whose domain or
        category no longer exists are skipped."""

        def ids(entry: dict[str, Any]) -> tuple[int, int] | None:
            dom = self.domain_by_name(entry.pop("domain", ""))
            cat = self.category_by_name(dom.id, entry.pop("category", "")) if dom else None
            return (dom.id, cat.id) if dom and cat else None

        for entry in data.get("devices", []):
            found = ids(entry)
            if found:
                device = DeviceRecord(domain_id=found[0], category_id=found[1], **entry)
                self.devices[device.mac] = device
                self._next_device_id = max(self._next_device_id, device.id + 1)
        for entry in data.get("codes", []):
            found = ids(entry)
            if found:
                code = CodeRecord(domain_id=found[0], category_id=found[1], **entry)
                self.codes[code.code] = code


def _encrypt(seed: str, plaintext: str, password: str) -> dict[str, str]:
    """The 0x0003 body. RC4 ignores key bytes past the 256th (its key schedule indexes the
    key modulo its length over 256 steps), so a Devices with a long seed still produces a
    valid ciphertext: the simulator can send what provd must survive."""
    key = f"{seed}:{password}"
    if len(key.encode()) <= crypto.MAX_RC4_KEY:
        return encrypt_admin_password(seed, plaintext, password)
    raw = key.encode()[: crypto.MAX_RC4_KEY]
    from Crypto.Cipher import ARC4

    return {"seed": seed, "pwd": ARC4.new(raw).encrypt(plaintext.encode()).hex()}


def plain_items(settings: CategoryConfig) -> list[dict[str, Any]]:
    """A category's items in clear, in sending order (PHONE, MEDIA, NTP, TLS_PROFILE, extra)."""
    items: list[dict[str, Any]] = [
        {"type": "PHONE", "coder": settings.coder},
        {
            "type": "MEDIA",
            "stunServer": settings.stun_server,
            "turnServer": settings.turn_server,
            "turnUser": settings.turn_user,
            "turnPassword": settings.turn_password,
            "turnSeed": "",
        },
        {"type": "NTP", "tz": settings.tz, "ntp1": settings.ntp1, "ntp2": settings.ntp2},
        {"type": "TLS_PROFILE", "profile": settings.tls_profile},
    ]
    items += [dict(item) for item in settings.extra]
    return items
