"""Shared in-memory state of a running daemon, owned by the event loop (no locks needed).

:class:`PhoneDirectory` mirrors the ``phones`` table after every committed write, so the HTTP
server answers a boot storm from memory. :class:`DevicesLocator` holds the Devices service
URL the PBX announced. :class:`Outcomes` lets a ``ProvisioningPhone`` request wait for the
phone actor to finish the first registration.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import structlog
import trio

from ..logs import register_secret
from ..phones.keys import Key, keys_from
from ..phones.model import PhoneData
from ..protocol import ProtocolError
from ..protocol.sysclient import decrypt_turn_password
from ..store.records import PhoneRecord
from ..transport.address import devices_url_problem

log = structlog.get_logger("provd.state")


def phone_data(record: PhoneRecord) -> PhoneData:
    """The renderers' view of a stored phone: TURN password decrypted."""
    config = {k: dict(v) for k, v in record.config.items()}
    media = config.get("MEDIA")
    if media is not None and record.sysclient_password:
        try:
            turn = decrypt_turn_password(media, record.sysclient_password)
        except (ProtocolError, ValueError) as exc:  # ValueError: a key RC4 refuses
            # The TURN part of the item is skipped (no server without its password); the
            # rest of the phone's file is still served. Logged once per stored revision.
            log.warning(
                "phone.turn_password_undecryptable",
                mac=record.mac,
                item="MEDIA",
                error=type(exc).__name__,
            )
            turn = None
            for key in ("turnServer", "turnUser"):
                media.pop(key, None)
        media.pop("turnSeed", None)
        if turn is not None:
            register_secret(turn)
            media["turnPassword"] = turn
        else:
            media.pop("turnPassword", None)
    return PhoneData(
        mac=record.mac,
        hwid=record.hwid,
        usename=record.usename,
        cn=record.cn,
        password=record.password,
        domain=record.domain,
        dns=record.dns,
        config=config,
        revision=record.revision,
        admin_password=record.admin_password or record.web_password,
        admin_password_source=(
            "devices" if record.admin_password else ("provd" if record.web_password else "")
        ),
        keys=_keys(record),
        key_category=record.key_category,
    )


def _keys(record: PhoneRecord) -> tuple[Key, ...]:
    try:
        return keys_from(list(record.keys), "phone_keys")
    except ValueError as exc:  # a store edited by hand: render without keys, say why
        log.warning("phone.keys_invalid", mac=record.mac, error=str(exc))
        return ()


class PhoneDirectory:
    def __init__(self) -> None:
        self._records: dict[str, PhoneRecord] = {}
        self._data: dict[str, PhoneData] = {}

    def load(self, records: Iterable[PhoneRecord]) -> None:
        for record in records:
            self.put(record)

    def put(self, record: PhoneRecord) -> None:
        for secret in (
            record.password,
            record.sysclient_password,
            record.admin_password,
            record.web_password,
        ):
            register_secret(secret)
        self._records[record.mac] = record
        self._data.pop(record.mac, None)

    def remove(self, mac: str) -> None:
        self._records.pop(mac, None)
        self._data.pop(mac, None)

    def get(self, mac: str) -> PhoneRecord | None:
        return self._records.get(mac)

    def all(self) -> list[PhoneRecord]:
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def data(self, mac: str) -> PhoneData | None:
        """The phone as renderers see it, for provisioned phones only."""
        data = self._data.get(mac)
        if data is None:
            record = self._records.get(mac)
            if record is None or record.state != "provisioned":
                return None
            data = self._data[mac] = phone_data(record)
        return data


class DevicesLocator:
    """The Devices service URL, as the PBX last announced it (or as configured/persisted).

    Only a valid websocket URL (:func:`devices_url_problem`) is ever taken; anything else is
    refused here, so no caller can persist or hand a bad one to the phone actors.
    """

    def __init__(self, url: str = "") -> None:
        self.url = url if url and devices_url_problem(url) is None else ""
        self.service = ""
        self._changed = trio.Event()

    def set(self, url: str, service: str = "") -> bool:
        """Returns True if the URL changed (actors then reconnect to the new one).

        An empty ``url`` is ignored (nothing known); an invalid one is refused with a
        warning naming it, and the current URL stays.
        """
        if not url:
            return False
        problem = devices_url_problem(url)
        if problem is not None:
            log.warning("devices.url_refused", url=url, error=problem)
            return False
        self.service = service or self.service
        if url == self.url:
            return False
        self.url = url
        self._changed.set()
        self._changed = trio.Event()
        return True

    async def wait_url(self) -> str:
        while not self.url:
            await self._changed.wait()
        return self.url

    async def wait_changed(self) -> None:
        await self._changed.wait()


@attrs.define
class Outcome:
    ok: bool
    error: str = ""


class Outcomes:
    """First-registration results per (MAC, code), for ``ProvisioningPhone`` answers."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], trio.Event] = {}
        self._results: dict[tuple[str, str], Outcome] = {}

    def reset(self, mac: str, code: str) -> None:
        self._results.pop((mac, code), None)
        self._events.pop((mac, code), None)

    def report(self, mac: str, code: str, outcome: Outcome) -> None:
        key = (mac, code)
        self._results[key] = outcome
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    async def wait(self, mac: str, code: str) -> Outcome:
        key = (mac, code)
        while key not in self._results:
            event = self._events.setdefault(key, trio.Event())
            await event.wait()
        return self._results[key]
