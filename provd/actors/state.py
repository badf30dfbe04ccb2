"""Shared in-memory state of a running daemon, owned by the event loop (no locks needed).

:class:`PhoneDirectory` mirrors the ``phones`` table after every committed write, so the HTTP
server answers a boot storm from memory. :class:`DevicesLocator` holds the Devices service
URL the PBX announced. :class:`Outcomes` lets a ``ProvisioningPhone`` request wait for the
phone actor to finish the first registration. :class:`HandshakeLimiter` caps sysclient
handshakes in flight, first provisionings ahead. :class:`ActorStatus` is what operators see
of each phone actor (``provd status``, ``provd phones show``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable

import attrs
import structlog
import trio

from ..logs import forget_secret, redact_secrets, register_secret
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
            register_secret(turn, owner=record.mac)
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


@attrs.define
class ActorStatus:
    """The live state of one phone actor, for operators.

    ``state``: starting, connecting, handshake, connected, backoff, crashed (restart
    pending), failed (code refused; waits for a new ProvisioningPhone), stopped.
    """

    state: str = "starting"
    #: The last failure, log-safe ("" when none since the last good connection).
    error: str = ""
    #: Wall-clock time of the last state change.
    since: float = attrs.field(factory=time.time)
    #: Crashes (unexpected exceptions) since the actor was (re)started by the supervisor.
    crashes: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "error": self.error,
            "since": round(self.since, 1),
            "crashes": self.crashes,
        }


def _secrets_of(record: PhoneRecord) -> tuple[str, ...]:
    return (
        record.password,
        record.sysclient_password,
        record.admin_password,
        record.web_password,
    )


class PhoneDirectory:
    def __init__(self) -> None:
        self._records: dict[str, PhoneRecord] = {}
        self._data: dict[str, PhoneData] = {}
        #: Phone actors' live state by MAC (an entry only while the phone is known).
        self.actors: dict[str, ActorStatus] = {}

    def actor(self, mac: str) -> ActorStatus:
        """The status entry of ``mac``'s actor (created on first use)."""
        status = self.actors.get(mac)
        if status is None:
            status = self.actors[mac] = ActorStatus()
        return status

    def set_actor(self, mac: str, state: str, error: str | None = None) -> None:
        """Record an actor state change; ``error`` None keeps the last error."""
        if mac not in self._records:
            return  # a removed phone leaves no entry behind
        status = self.actor(mac)
        status.state = state
        status.since = time.time()
        if error is not None:
            # Shown by `provd status`: scrubbed of every registered secret like a log line.
            status.error = redact_secrets(None, "", {"error": error})["error"]

    def load(self, records: Iterable[PhoneRecord]) -> None:
        for record in records:
            self.put(record)

    def put(self, record: PhoneRecord) -> None:
        # The phone's secrets are scrubbed from logs while it holds them (owner = its MAC);
        # a replaced one is forgotten (unless another owner holds it), a removed phone's
        # all of them (provd.logs.forget_secrets), so the scrubber does not grow forever.
        secrets = _secrets_of(record)
        old = self._records.get(record.mac)
        if old is not None and old.online != record.online:
            # The online flag is the actors' (set_online); the store's copy lags behind
            # (written in batches, issue 14), so a record re-read from it keeps ours.
            record = attrs.evolve(record, online=old.online)
        if old is None:
            for secret in secrets:
                register_secret(secret, owner=record.mac)
        else:  # the old record's are registered: only what changed (four puts a phone)
            held = _secrets_of(old)
            if held != secrets:
                for secret in set(secrets) - set(held):
                    register_secret(secret, owner=record.mac)
                for secret in set(held) - set(secrets):
                    forget_secret(secret, owner=record.mac)
        self._records[record.mac] = record
        self._data.pop(record.mac, None)

    def set_online(self, mac: str, online: bool) -> None:
        """The phone's actor connected (True) or lost its connection (False)."""
        record = self._records.get(mac)
        if record is not None and record.online != online:
            self._records[mac] = record = attrs.evolve(record, online=online)
            self.put(record)  # (listeners of a subclass hear of it)

    def remove(self, mac: str) -> None:
        self._records.pop(mac, None)
        self._data.pop(mac, None)
        self.actors.pop(mac, None)

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
        #: Called with the new URL when it changes (the phone actors' connections end).
        self.listeners: list[Callable[[str], None]] = []

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
        for listener in self.listeners:
            listener(url)
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
    """First-registration results per (MAC, code), for ``ProvisioningPhone`` answers.

    Bounded: one result per MAC (the newest code's), and an event only while someone
    waits, so a long-running daemon does not accumulate entries (issue 8.12).
    """

    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}
        self._waiters: dict[str, int] = {}
        self._results: dict[str, tuple[str, Outcome]] = {}

    def __len__(self) -> int:
        return len(self._results) + len(self._events)

    def reset(self, mac: str, code: str) -> None:
        result = self._results.get(mac)
        if result is not None and result[0] == code:
            del self._results[mac]

    def forget(self, mac: str) -> None:
        """The phone is gone: drop its result (waiters, if any, keep waiting)."""
        self._results.pop(mac, None)

    def report(self, mac: str, code: str, outcome: Outcome) -> None:
        self._results[mac] = (code, outcome)
        event = self._events.pop(mac, None)
        if event is not None:
            event.set()

    async def wait(self, mac: str, code: str) -> Outcome:
        while True:
            result = self._results.get(mac)
            if result is not None and result[0] == code:
                return result[1]
            event = self._events.get(mac)
            if event is None:
                event = self._events[mac] = trio.Event()
            self._waiters[mac] = self._waiters.get(mac, 0) + 1
            try:
                await event.wait()
            finally:
                self._waiters[mac] -= 1
                if not self._waiters[mac]:
                    del self._waiters[mac]
                    if self._events.get(mac) is event:
                        del self._events[mac]


class HandshakeLimiter:
    """At most ``limit`` sysclient handshakes at once; first provisionings (``priority``)
    may use ``reserved`` more slots and are always woken before waiting reconnects, so a
    reconnect storm after a restart cannot starve a phone being provisioned now."""

    def __init__(self, limit: int, reserved: int = 0) -> None:
        self.limit = limit
        self.reserved = reserved
        self.in_use = 0
        self._queues: dict[bool, collections.deque[trio.Event]] = {
            True: collections.deque(),
            False: collections.deque(),
        }

    def _fits(self, priority: bool) -> bool:
        return self.in_use < self.limit + (self.reserved if priority else 0)

    @property
    def waiting(self) -> int:
        return len(self._queues[True]) + len(self._queues[False])

    async def acquire(self, priority: bool = False) -> None:
        ahead = self._queues[True] or (not priority and self._queues[False])
        if self._fits(priority) and not ahead:
            self.in_use += 1
            await trio.lowlevel.checkpoint()
            return
        event = trio.Event()
        self._queues[priority].append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # the slot was handed over as we were cancelled
            else:
                self._queues[priority].remove(event)
            raise

    def release(self) -> None:
        self.in_use -= 1
        for priority in (True, False):
            queue = self._queues[priority]
            while queue and self._fits(priority):
                self.in_use += 1
                queue.popleft().set()
