"""The PBX's own data for phone files, asked on the PBX App-object session (PbxApi).

After ``PbxInfo`` lists ``PbxApi``, the session asks ``GetNodeInfo`` (and again every
``pbx.node_info_interval``: PbxApi reports no change of node info) and ``SubscribeProfile``
(the App object's first profile; ``ProfileContactAdded`` / ``ProfileContactDeleted`` keep
it current; a new session subscribes again and its result replaces the list).

Every change that alters what phones get is stored (``settings`` key ``pbx_data``, so the
files render the same after a restart without the PBX) and bumps, in the same transaction,
the revision of each phone it affects: the revision is the one signal that a phone's file
changed (render caches key on it). The phones pick the new file up on their next fetch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from ..phones.pbx import Favourite, NodeInfo, PbxDataSettings, PbxDirectory, favourite_from
from ..protocol.messages import (
    GetNodeInfo,
    GetNodeInfoResult,
    Message,
    ProfileContactAdded,
    ProfileContactDeleted,
    SubscribeProfile,
    SubscribeProfileResult,
)
from .state import PhoneDirectory

log = structlog.get_logger("provd.pbxdata")

#: Where the PBX data is stored (table ``settings``).
SETTING = "pbx_data"
#: The API ``PbxInfo.apis`` must list.
PBX_API = "PbxApi"
#: ``src`` of provd's own PbxApi requests on a PBX session.
NODE_SRC = "pbx-node"
PROFILE_SRC = "pbx-profile"

#: The PbxApi messages a PBX session hands to :meth:`PbxData.handle`.
MESSAGES: tuple[type[Message], ...] = (
    GetNodeInfoResult,
    SubscribeProfileResult,
    ProfileContactAdded,
    ProfileContactDeleted,
)


def data_settings(pbx: Any) -> PbxDataSettings:
    """The renderers' view of ``[pbx]`` (:class:`provd.config.PbxSettings`)."""
    return PbxDataSettings(
        dial_plan=pbx.dial_plan,
        favourites=pbx.favourites,
        prefix_intl=pbx.prefix_intl,
        prefix_ntl=pbx.prefix_ntl,
        country_code=pbx.country_code,
    )


class PbxData:
    """Keeps :attr:`directory` current from the PBX sessions.

    Args:
        store: the store actor (``call``).
        phones: the phone directory (revisions are updated in it after each bump).
        settings: returns the live ``[pbx]`` settings (they may change on reload).
    """

    def __init__(self, store: Any, phones: PhoneDirectory, settings: Callable[[], Any]) -> None:
        self.store = store
        self.phones = phones
        self.settings = settings
        self.directory = PbxDirectory(data_settings(settings()))
        self._lock = trio.Lock()  # one store write at a time, in the order of the changes

    async def load(self) -> None:
        """The stored data, before the first file is served."""
        self.directory.settings = data_settings(self.settings())
        raw = await self.store.call(lambda db: db.setting(SETTING))
        if not raw:
            return
        try:
            self.directory.load_json(json.loads(raw))
        except ValueError as exc:  # a store edited by hand: start without, say why
            log.warning("pbx.stored_data_invalid", setting=SETTING, error=str(exc))

    async def reconfigure(self) -> None:
        """After a reload: new ``[pbx]`` switches; every phone's file may change."""
        new = data_settings(self.settings())
        if new == self.directory.settings:
            return
        self.directory.settings = new
        await self._bump(None, reason="config")

    def summary(self) -> dict[str, Any]:
        """For ``provd status``: per PBX domain, its node prefixes and favourites count."""
        out: dict[str, Any] = {}
        for domain in self.directory.domains():
            data = self.directory.get(domain)
            assert data is not None
            node = data.node
            out[domain] = {
                "node": node.name if node else None,
                "prefixes": (
                    f"intl {node.prefix_intl or '-'} ntl {node.prefix_ntl or '-'}"
                    f" subs {node.prefix_subs or '-'} cc {node.country_code or '-'}"
                    if node
                    else None
                ),
                "favourites": len(data.favourites),
            }
        return out

    # --- on a PBX session ----------------------------------------------------------------

    async def session(self, send: Callable[[Message], Any], domain: str, apis: Any) -> None:
        """Run for one PBX session (cancelled when it ends): ask, then ask node info again
        every ``pbx.node_info_interval``."""
        if PBX_API not in apis:
            log.info(
                "pbx.pbxapi_unavailable",
                domain=domain,
                hint="enable PbxApi on the App object for dial plan and favourites",
            )
            return
        await send(SubscribeProfile(src=PROFILE_SRC))
        while True:
            await send(GetNodeInfo(src=NODE_SRC))
            await trio.sleep(self.settings().node_info_interval)

    async def handle(self, domain: str, msg: Message) -> None:
        """A PbxApi answer or indication on the PBX session of ``domain``."""
        # A PBX provd did not know yet changes which PBX the phones fall back to: all of them.
        new = self.directory.get(domain) is None
        if isinstance(msg, GetNodeInfoResult):
            node = NodeInfo(
                name=msg.name,
                prefix_intl=msg.prefix_intl,
                prefix_ntl=msg.prefix_ntl,
                prefix_subs=msg.prefix_subs,
                country_code=msg.country_code,
            )
            problem = node.problem()
            if problem is not None:
                log.warning("pbx.node_info_unusable", domain=domain, error=problem)
            if self.directory.set_node(domain, node):
                log.info(
                    "pbx.node_info",
                    domain=domain,
                    node=node.name,
                    prefix_intl=node.prefix_intl,
                    prefix_ntl=node.prefix_ntl,
                    prefix_subs=node.prefix_subs,
                    country_code=node.country_code,
                )
                await self._changed(domain, "node_info", new)
            return
        if isinstance(msg, SubscribeProfileResult):
            contacts = msg.profile.contacts if msg.profile is not None else ()
            favourites = [f for f in map(_favourite, contacts) if f is not None]
            if self.directory.set_favourites(domain, favourites):
                log.info("pbx.favourites", domain=domain, count=len(favourites))
                await self._changed(domain, "favourites", new)
            return
        if isinstance(msg, ProfileContactAdded):
            favourite = _favourite(msg.profile.contact)
            if favourite is not None and self.directory.add_favourite(domain, favourite):
                log.info("pbx.favourite_added", domain=domain, id=favourite.id)
                await self._changed(domain, "favourite_added", new)
            return
        if isinstance(msg, ProfileContactDeleted):
            fid = msg.profile.contact.id
            if fid is not None and self.directory.remove_favourite(domain, fid):
                log.info("pbx.favourite_deleted", domain=domain, id=fid)
                await self._changed(domain, "favourite_deleted", new)

    # --- store and revisions ---------------------------------------------------------------

    async def _changed(self, domain: str, reason: str, new: bool) -> None:
        known = self.directory.domains()
        if len(known) == 1 or new:
            macs = None  # the only PBX (every phone is its phone), or a PBX new to provd
        else:
            owner = self.directory.owner
            macs = [r.mac for r in self.phones.all() if owner(r.domain) == domain.lower()]
        await self._bump(macs, reason=reason)

    async def _bump(self, macs: list[str] | None, *, reason: str) -> None:
        async with self._lock:
            value = json.dumps(self.directory.to_json(), ensure_ascii=False, sort_keys=True)
            revisions = await self.store.call(
                lambda db: db.set_setting_and_bump(SETTING, value, macs)
            )
        for mac, revision in revisions.items():
            current = self.phones.get(mac)
            if current is not None and current.revision != revision:
                self.phones.put(attrs.evolve(current, revision=revision))
        log.info("pbx.phones_changed", reason=reason, phones=len(revisions))


def _favourite(contact: Any) -> Favourite | None:
    return favourite_from(attrs.asdict(contact, recurse=False)) if contact is not None else None
