"""Each phone's lifecycle, sans-I/O: pending → provisioned → fetched → registered.

:class:`LifecycleBook` is fed what the daemon learns and decides what it means; it never
waits or sends. Its inputs:

- a stored phone record (``on_record``): ``pending``/``failed`` → ``pending``; Devices done
  (``provisioned``) → ``provisioned``;
- a fetch of the phone's file (``on_fetch``, from the fetch records): → ``fetched``;
- the PBX's answer about the phone's user (``on_regs``, PbxAdminApi ``GetRegs``): a
  registration whose ``hw`` is the phone's hwid → ``registered`` (with its address); none
  while ``registered`` → back to ``fetched`` (registration lost);
- a failed question (``on_check_failed``): kept as the last error, state unchanged.

Each transition is logged at info (``phone.lifecycle`` with ``mac``, ``from``, ``to``). A
phone that fetched its file and is still not registered ``warn_after`` seconds later gets
ONE warning (``phone.not_registered``, naming the MAC, the user and what to check); it is
cleared at info (``phone.not_registered_cleared``) once the phone registers.

Scheduling (``due_groups``/``next_due``): a ``fetched`` phone is checked every
``retry_interval`` (the first time that long after its fetch) and when ``warn_after`` runs
out; ``provisioned`` and ``registered`` ones every ``check_interval``; ``pending`` ones not
at all. Due phones are handed out grouped by user (one ``GetRegs`` per user ``cn``).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import structlog

from ..config import RegistrationSettings
from ..protocol.messages import GetRegsResult, Reg
from ..store.records import Lifecycle, PhoneRecord

log = structlog.get_logger("provd.lifecycle")

#: Seconds: a fetch this soon after the one in ``fetched_at`` leaves it as it is (a boot's
#: few files, a boot storm's repeats), so it costs neither a new record nor a store write
#: (issue 14: in a storm every fetch rewrote the phone's lifecycle).
FETCHED_AT_RESOLUTION = 10.0

#: What the warning tells the operator to check.
NOT_REGISTERED_HINT = (
    "the phone got its file but the PBX shows no registration of it: check the SIP "
    "credentials in its file (user name and password of the PBX user), and that the PBX "
    "accepts its transport (a device entry with 'TLS only' refuses TCP/UDP: "
    "pbx.fix_device_flags, phones.sip_transport)"
)


@attrs.frozen
class Target:
    """Whom to ask about a phone: its user's ``cn`` and its ``hwid``."""

    cn: str
    hw: str
    user: str


def target_of(record: PhoneRecord) -> Target:
    return Target(cn=record.cn or record.usename, hw=record.hwid or record.mac, user=record.usename)


class LifecycleBook:
    """Args:
    settings: returns the live ``[registration]`` settings.
    clock: wall-clock seconds (tests inject trio's clock).
    rng: spreads the first periodic checks after a start.
    """

    def __init__(
        self,
        settings: Callable[[], RegistrationSettings],
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self.phones: dict[str, Lifecycle] = {}
        self.targets: dict[str, Target] = {}
        #: Next check per MAC (absent: none planned, e.g. pending or in flight).
        self.due: dict[str, float] = {}
        #: ``(when, mac)``, a min-heap over ``due`` (entries ``due`` no longer holds are
        #: skipped when they come up).
        self._heap: list[tuple[float, str]] = []
        #: MACs by user ``cn`` (one GetRegs answers for all of them).
        self._by_cn: dict[str, set[str]] = {}
        #: MACs whose lifecycle changed since the last :meth:`take_dirty`.
        self.dirty: set[str] = set()
        #: Called after every change that may move the next due time earlier.
        self.on_change: Callable[[], None] = lambda: None

    # --- inputs ----------------------------------------------------------------------------

    def load(self, stored: dict[str, Lifecycle], records: Iterable[PhoneRecord]) -> None:
        """At start: the stored lifecycles, made consistent with the stored phones."""
        now = self._clock()
        s = self._settings()
        for record in records:
            self.phones[record.mac] = stored.get(record.mac) or Lifecycle(mac=record.mac)
            self.on_record(record)
            life = self.phones[record.mac]
            if life.state == "fetched":
                self._plan(record.mac, now + s.retry_interval)
            elif life.state in ("provisioned", "registered"):
                # spread over one interval, so a restart does not ask about all at once
                self._plan(record.mac, now + self._rng.uniform(0, s.check_interval))

    def on_record(self, record: PhoneRecord) -> None:
        """A phone record as stored now (provisioned or not)."""
        mac = record.mac
        target = target_of(record)
        old = self.targets.get(mac)
        if old != target:
            if old is not None:
                self._by_cn.get(old.cn, set()).discard(mac)
            self._by_cn.setdefault(target.cn, set()).add(mac)
            self.targets[mac] = target
        life = self.phones.get(mac) or Lifecycle(mac=mac)
        now = self._clock()
        changes: dict[str, Any] = {}
        if record.state != "provisioned":
            if life.state != "pending":
                # a new provisioning starts a new cycle
                changes.update(
                    self._move(life, "pending", now),
                    provisioned_at=0.0,
                    fetched_at=0.0,
                    registered_at=0.0,
                    addr="",
                    warned=False,
                )
            if record.state == "failed" and record.error != life.error:
                changes["error"] = record.error
            self.due.pop(mac, None)
        elif life.state == "pending":
            changes.update(self._move(life, "provisioned", now), provisioned_at=now, error="")
            self._plan(mac, now + self._settings().check_interval)
        self._put(life, changes)

    def on_remove(self, mac: str) -> None:
        self.phones.pop(mac, None)
        old = self.targets.pop(mac, None)
        if old is not None:
            self._by_cn.get(old.cn, set()).discard(mac)
        self.due.pop(mac, None)
        self.dirty.discard(mac)

    def on_fetch(self, mac: str, when: float) -> None:
        """The phone got its file at ``when``."""
        life = self.phones.get(mac)
        if life is None or life.state == "pending":
            return  # only provisioned phones get a file
        changes: dict[str, Any] = {}
        if when > life.fetched_at and (
            life.state == "provisioned" or when >= life.fetched_at + FETCHED_AT_RESOLUTION
        ):
            changes["fetched_at"] = when
        if life.state == "provisioned":
            changes.update(self._move(life, "fetched", when))
            retry = when + self._settings().retry_interval
            self._plan(mac, min(self.due.get(mac, math.inf), retry))
        self._put(life, changes)

    def on_regs(self, macs: Iterable[str], result: GetRegsResult) -> None:
        """The PBX's current registrations of the user of ``macs``."""
        now = self._clock()
        for mac in macs:
            life, target = self.phones.get(mac), self.targets.get(mac)
            if life is None or target is None:
                continue
            reg = result.find(target.hw) or (result.find(mac) if target.hw != mac else None)
            changes: dict[str, Any] = {"checked_at": now}
            if reg is not None:
                changes.update(self._registered(life, target, reg, now))
            elif life.state == "registered":
                log.info("phone.registration_lost", mac=mac, user=target.user, addr=life.addr)
                changes.update(self._move(life, "fetched", now), addr="")
            elif life.state == "fetched":
                changes.update(self._maybe_warn(life, target, now))
            self._put(life, changes)
            self._schedule(mac, now)

    def on_check_failed(self, macs: Iterable[str], error: str) -> None:
        """Asking the PBX failed (``error`` is log-safe): kept as the last error."""
        now = self._clock()
        for mac in macs:
            life, target = self.phones.get(mac), self.targets.get(mac)
            if life is None or target is None:
                continue
            if life.error != error:
                log.info("registration.check_failed", mac=mac, user=target.user, error=error)
            self._put(life, {"error": error})
            self._schedule(mac, now)

    # --- scheduling ------------------------------------------------------------------------

    def next_due(self) -> float | None:
        heap = self._heap
        while heap and self.due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # stale: replanned, taken or removed since
        return heap[0][0] if heap else None

    def due_groups(self, limit: int | None = None) -> list[tuple[Target, list[str]]]:
        """Phones due now, grouped by user (at most ``limit`` groups); taken out of the
        schedule until their answer (or failure) comes in."""
        now = self._clock()
        groups: dict[str, tuple[Target, list[str]]] = {}
        while (when := self.next_due()) is not None and when <= now:
            if limit is not None and len(groups) >= limit:
                break
            _when, mac = heapq.heappop(self._heap)
            target = self.targets.get(mac)
            if target is None:
                self.due.pop(mac, None)
                continue
            # the user's other phones (due or not) are answered by the same GetRegs
            macs = sorted(m for m in self._by_cn.get(target.cn, ()) if m in self.due)
            for m in macs:
                self.due.pop(m, None)
            if target.cn in groups:
                groups[target.cn][1].extend(macs)
            else:
                groups[target.cn] = (target, macs)
        return list(groups.values())

    def reschedule(self, macs: Iterable[str]) -> None:
        """Phones taken by :meth:`due_groups` that were not asked about after all."""
        now = self._clock()
        for mac in macs:
            self._schedule(mac, now)

    def take_dirty(self) -> list[Lifecycle]:
        changed = [self.phones[m] for m in sorted(self.dirty) if m in self.phones]
        self.dirty.clear()
        return changed

    # --- views -----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for life in self.phones.values():
            out[life.state] = out.get(life.state, 0) + 1
        return out

    def warned(self) -> list[Lifecycle]:
        return sorted((x for x in self.phones.values() if x.warned), key=lambda x: x.since)

    # --- internals -------------------------------------------------------------------------

    def _put(self, life: Lifecycle, changes: dict[str, Any]) -> None:
        """Store ``life`` with ``changes`` (one evolve); marks it dirty if it changed."""
        if life.mac in self.phones and all(getattr(life, k) == v for k, v in changes.items()):
            return
        self.phones[life.mac] = attrs.evolve(life, **changes) if changes else life
        self.dirty.add(life.mac)

    def _move(self, life: Lifecycle, to: str, now: float) -> dict[str, Any]:
        """The changes of a transition to ``to``, logged."""
        log.info("phone.lifecycle", mac=life.mac, **{"from": life.state, "to": to})
        return {"state": to, "since": now}

    def _registered(self, life: Lifecycle, target: Target, reg: Reg, now: float) -> dict[str, Any]:
        if life.warned:
            log.info(
                "phone.not_registered_cleared",
                mac=life.mac,
                user=target.user,
                addr=reg.addr,
                after=round(now - life.since, 1),
            )
        changes: dict[str, Any] = {"addr": reg.addr, "warned": False, "error": ""}
        if life.state != "registered":
            changes.update(self._move(life, "registered", now), registered_at=now)
        elif life.addr != reg.addr:
            log.info("phone.registration_moved", mac=life.mac, addr=reg.addr, was=life.addr)
        return changes

    def _maybe_warn(self, life: Lifecycle, target: Target, now: float) -> dict[str, Any]:
        waited = now - life.since
        if life.warned or waited < self._settings().warn_after:
            return {}
        log.warning(
            "phone.not_registered",
            mac=life.mac,
            user=target.user,
            cn=target.cn,
            hwid=target.hw,
            seconds=round(waited),
            hint=NOT_REGISTERED_HINT,
        )
        error = f"fetched its file {waited:.0f} s ago but not registered at the PBX"
        return {"warned": True, "error": error}

    def _schedule(self, mac: str, now: float) -> None:
        life = self.phones.get(mac)
        if life is None or life.state == "pending":
            self.due.pop(mac, None)
            return
        s = self._settings()
        if life.state == "fetched":
            when = now + s.retry_interval
            if not life.warned:
                when = min(when, max(now, life.since + s.warn_after))
        else:
            when = now + s.check_interval
        self._plan(mac, when)

    def _plan(self, mac: str, when: float) -> None:
        """Check ``mac`` at ``when``; wakes the checker when that is the earliest check."""
        earliest = self.next_due()
        self.due[mac] = when
        heapq.heappush(self._heap, (when, mac))
        if earliest is None or when < earliest:
            self.on_change()
