"""What the PBX itself says that phone files carry: its node's prefixes and its favourites.

provd asks the PBX on the App-object session (PbxApi, spec section 7): ``GetNodeInfo``
gives the node's dialling prefixes (international, national, subscriber) and country code;
``SubscribeProfile`` gives the App object's first profile, whose favourites (contacts) are
kept current through ``ProfileContactAdded`` / ``ProfileContactDeleted``.

:class:`PbxDirectory` holds that per PBX (keyed by its domain), survives restarts through
the store (:meth:`PbxDirectory.to_json`), and is read by the renderers:

* the prefixes become each vendor's dial-plan rules (:mod:`provd.phones.regional`);
* the favourites become function keys (:class:`FavouriteKeys`, a second
  :class:`~provd.phones.keys.KeySource` next to the operator's keys).

Which PBX a phone belongs to: the one whose domain is the phone's domain
(``ProvisioningPhone.domain``); when provd knows exactly one PBX, every phone belongs to it
(one PBX per installation is the usual case, and a phone's domain may be spelt differently).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from attrs import evolve, field, frozen

from provd.phones.keys import MAX_KEYS, Key, KeySource
from provd.phones.model import PhoneData

log = structlog.get_logger("provd.phones.pbx")

#: What a prefix from the PBX may contain to reach a phone file (digits, * and #).
_PREFIX = re.compile(r"[0-9*#]{0,16}")
_COUNTRY = re.compile(r"[0-9]{0,4}")
#: A key target (see :data:`provd.phones.keys._TARGET`).
_TARGET = re.compile(r"[A-Za-z0-9*#+._@-]{1,64}")


@frozen(kw_only=True)
class NodeInfo:
    """``GetNodeInfoResult``: the PBX node's name, prefixes and country code."""

    name: str = ""
    prefix_intl: str = ""
    prefix_ntl: str = ""
    prefix_subs: str = ""
    country_code: str = ""

    def problem(self) -> str | None:
        """Why these values must not reach a phone file (None: they may)."""
        for key in ("prefix_intl", "prefix_ntl", "prefix_subs"):
            if not _PREFIX.fullmatch(getattr(self, key)):
                return f"{key}: digits, * and # only (at most 16)"
        if not _COUNTRY.fullmatch(self.country_code):
            return "country_code: at most 4 digits"
        return None

    def rewrites(self) -> list[tuple[str, str]]:
        """E.164 numbers (``+49...``, as call lists and directories hold them) as the PBX
        wants them dialled, first match wins: ``+<own country>`` -> national prefix,
        ``+`` -> international prefix. Empty without an international prefix.

        The subscriber prefix needs the node's area code to be used this way, which the
        JSON API does not give (only the SDK's C++ ``GetAreaCode``): it is not used.
        """
        if not self.prefix_intl:
            return []
        out: list[tuple[str, str]] = []
        if self.country_code and self.prefix_ntl:
            out.append(("+" + self.country_code, self.prefix_ntl))
        out.append(("+", self.prefix_intl))
        return out


@frozen(kw_only=True)
class Favourite:
    """One contact of the App object's first profile (SDK ``PbxApi.htm``, ``contact``):
    ``name`` the SIP URI, ``num`` the number, ``dsp`` the display name; ``presence`` /
    ``dialog``: whether presence / dialog monitoring is available for it."""

    id: int
    name: str = ""
    num: str = ""
    dsp: str = ""
    presence: bool = False
    dialog: bool = False

    def key(self) -> Key | None:
        """The function key: BLF when the PBX can monitor the contact, else a speed dial;
        None when it has nothing a phone could dial."""
        user = _sip_user(self.name)
        label = (self.dsp or user or self.num)[:64].replace("\r", " ").replace("\n", " ")
        if (self.presence or self.dialog) and user and _TARGET.fullmatch(user):
            return Key("blf", user, label)
        target = self.num if self.num and _TARGET.fullmatch(self.num) else user
        if target and _TARGET.fullmatch(target):
            return Key("speed", target, label)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "num": self.num,
            "dsp": self.dsp,
            "presence": self.presence,
            "dialog": self.dialog,
        }


def _sip_user(uri: str) -> str:
    """``sip:anna@example.com`` -> ``anna`` (the favourite's ``name`` is its SIP URI)."""
    uri = uri.strip()
    if uri.lower().startswith("sip:"):
        uri = uri[4:]
    return uri.partition("@")[0]


def favourite_from(data: Mapping[str, Any]) -> Favourite | None:
    """A favourite from a PbxApi ``contact`` (or its stored form); None without an id."""
    fid = data.get("id")
    if not isinstance(fid, int) or isinstance(fid, bool):
        return None

    def text(key: str) -> str:
        value = data.get(key)
        return value if isinstance(value, str) else ""

    return Favourite(
        id=fid,
        name=text("name"),
        num=text("num"),
        dsp=text("dsp"),
        presence=data.get("presence") is True,
        dialog=data.get("dialog") is True,
    )


@frozen(kw_only=True)
class PbxData:
    """What one PBX said: node info (None until asked) and the first profile's favourites."""

    domain: str
    node: NodeInfo | None = None
    favourites: tuple[Favourite, ...] = field(default=(), converter=tuple)

    def to_json(self) -> dict[str, Any]:
        node = None
        if self.node is not None:
            n = self.node
            node = {
                "name": n.name,
                "prefix_intl": n.prefix_intl,
                "prefix_ntl": n.prefix_ntl,
                "prefix_subs": n.prefix_subs,
                "country_code": n.country_code,
            }
        return {"node": node, "favourites": [f.as_dict() for f in self.favourites]}

    @classmethod
    def from_json(cls, domain: str, data: Mapping[str, Any]) -> PbxData:
        node = data.get("node")
        info = None
        if isinstance(node, Mapping):
            info = NodeInfo(**{k: str(node.get(k) or "") for k in _NODE_KEYS})
        favs = [favourite_from(f) for f in data.get("favourites") or () if isinstance(f, Mapping)]
        return cls(domain=domain, node=info, favourites=[f for f in favs if f is not None])


_NODE_KEYS = ("name", "prefix_intl", "prefix_ntl", "prefix_subs", "country_code")


@frozen(kw_only=True)
class PbxDataSettings:
    """The ``[pbx]`` switches the renderers honour (see :class:`provd.config.PbxSettings`)."""

    dial_plan: bool = True
    favourites: bool = True
    prefix_intl: str = ""
    prefix_ntl: str = ""
    country_code: str = ""


class PbxDirectory:
    """PBX data by domain (lower case), read by renderers, written by the PBX sessions."""

    def __init__(self, settings: PbxDataSettings | None = None) -> None:
        self.settings = settings or PbxDataSettings()
        self._by_domain: dict[str, PbxData] = {}

    def load_json(self, data: Any) -> None:
        """The stored form (``settings`` key ``pbx_data``); bad entries are skipped."""
        if not isinstance(data, Mapping):
            return
        for domain, entry in data.items():
            if isinstance(domain, str) and isinstance(entry, Mapping):
                self._by_domain[domain.lower()] = PbxData.from_json(domain.lower(), entry)

    def to_json(self) -> dict[str, Any]:
        return {domain: data.to_json() for domain, data in sorted(self._by_domain.items())}

    def get(self, domain: str) -> PbxData | None:
        return self._by_domain.get(domain.lower())

    def domains(self) -> list[str]:
        return sorted(self._by_domain)

    def for_phone(self, phone_domain: str) -> PbxData | None:
        """The PBX a phone belongs to (see the module docstring)."""
        found = self._by_domain.get(phone_domain.lower())
        if found is None and len(self._by_domain) == 1:
            found = next(iter(self._by_domain.values()))
        return found

    def owner(self, phone_domain: str) -> str | None:
        data = self.for_phone(phone_domain)
        return data.domain if data is not None else None

    def set_node(self, domain: str, node: NodeInfo) -> bool:
        """Store a node's info; True if it changed what phones get."""
        domain = domain.lower()
        current = self._by_domain.get(domain) or PbxData(domain=domain)
        if current.node == node:
            return False
        self._by_domain[domain] = evolve(current, node=node)
        return True

    def set_favourites(self, domain: str, favourites: Iterable[Favourite]) -> bool:
        domain = domain.lower()
        favs = tuple(favourites)
        current = self._by_domain.get(domain) or PbxData(domain=domain)
        if current.favourites == favs and domain in self._by_domain:
            return False
        self._by_domain[domain] = evolve(current, favourites=favs)
        return True

    def add_favourite(self, domain: str, favourite: Favourite) -> bool:
        current = self.get(domain) or PbxData(domain=domain.lower())
        others = [f for f in current.favourites if f.id != favourite.id]
        return self.set_favourites(domain, [*others, favourite])

    def remove_favourite(self, domain: str, favourite_id: int) -> bool:
        current = self.get(domain)
        if current is None:
            return False
        return self.set_favourites(domain, [f for f in current.favourites if f.id != favourite_id])

    # --- what renderers read -------------------------------------------------------------

    def node_for(self, phone: PhoneData) -> tuple[NodeInfo | None, str]:
        """The node info for ``phone``'s dial plan, operator overrides applied, and where
        it came from; ``(None, why)`` when no dial plan is written."""
        s = self.settings
        if not s.dial_plan:
            return None, "operator config pbx.dial_plan = false"
        data = self.for_phone(phone.domain)
        node = data.node if data is not None else None
        overrides = {
            k: getattr(s, k) for k in ("prefix_intl", "prefix_ntl", "country_code") if getattr(s, k)
        }
        if node is None and not overrides:
            return None, "none (no node info from the PBX yet)"
        node = evolve(node or NodeInfo(), **overrides)
        problem = node.problem()
        if problem is not None:
            log.warning("phones.pbx_node_info_unusable", mac=phone.mac, error=problem)
            return None, f"none (PBX node info unusable: {problem})"
        where = f"PBX GetNodeInfo ({data.domain})" if data is not None and data.node else ""
        if overrides:
            names = ", ".join(f"pbx.{k}" for k in overrides)
            where = f"{where} + operator config {names}" if where else f"operator config {names}"
        return node, where

    def favourite_keys(self, phone: PhoneData) -> tuple[Key, ...]:
        if not self.settings.favourites:
            return ()
        data = self.for_phone(phone.domain)
        if data is None:
            return ()
        keys = (f.key() for f in data.favourites)
        return tuple(k for k in keys if k is not None)


class FavouriteKeys:
    """Operator keys first, then the PBX favourites in the free positions after them.

    Merge rule: the operator's keys (per phone, else per category, :class:`OperatorKeys`)
    keep their positions; each favourite takes the next free position, unless an operator
    key already has its target (no duplicate BLF/speed dial). At most
    :data:`~provd.phones.keys.MAX_KEYS`. ``pbx.favourites = false`` leaves the operator's
    keys alone.
    """

    def __init__(self, operator: KeySource, pbx: PbxDirectory) -> None:
        self.operator = operator
        self.pbx = pbx

    def source(self, phone: PhoneData) -> str:
        own = self.operator.source(phone) if hasattr(self.operator, "source") else "operator"
        favourites = self.pbx.favourite_keys(phone)
        if not favourites:
            return own
        domain = self.pbx.owner(phone.domain) or "?"
        return f"{own}, then {len(favourites)} PBX favourites (SubscribeProfile, {domain})"

    def keys(self, phone: PhoneData) -> tuple[Key, ...]:
        own = tuple(self.operator.keys(phone))
        taken = {k.target for k in own if k.target}
        merged = list(own)
        for key in self.pbx.favourite_keys(phone):
            if len(merged) >= MAX_KEYS:
                break
            if key.target in taken:
                continue
            taken.add(key.target)
            merged.append(key)
        return tuple(merged)
