"""The registration checker: the thin trio shell around :class:`~.lifecycle.LifecycleBook`.

It feeds the book (phone records from the directory, fetches from the fetch records),
asks the PBX about the phones the book says are due (PbxAdminApi ``GetRegs``, one request
per user, at most ``registration.max_per_second`` requests per second, a few in flight),
and writes changed lifecycles to the store in batches. Without a PBX session offering
PbxAdminApi it asks nothing and waits for one; a phone is then shown as far as provd
itself can tell (``fetched``).

With ``pbx.fix_device_flags`` and ``phones.sip_transport = "tcp"``, before its first check
each phone's device entry at its user object loses the *TLS only* flag (GetObject, then
UpdateObject of the whole ``devices`` list; :meth:`PbxAdminClient.clear_tls_only`), once
per phone and run of the daemon.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

import structlog
import trio

from ..config import Config
from ..phones.fetch import FetchRecord
from ..store.records import Lifecycle, PhoneRecord
from .lifecycle import LifecycleBook, Target
from .pbxadmin import PbxAdminClient, PbxAdminError, PbxAdminUnavailable

log = structlog.get_logger("provd.registration")

#: GetRegs requests in flight at once.
MAX_IN_FLIGHT = 8
#: Seconds between two writes of changed lifecycles to the store.
FLUSH_INTERVAL = 1.0


class RegistrationChecker:
    """Args:
    config: returns the live config.
    client: the PbxAdminApi client.
    write: ``async (lifecycles) -> None``, e.g. a store call.
    clock: wall-clock seconds (tests: trio's clock).
    """

    def __init__(
        self,
        config: Callable[[], Config],
        client: PbxAdminClient,
        write: Callable[[list[Lifecycle]], Awaitable[None]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self.client = client
        self._write = write
        self._clock = clock
        self.book = LifecycleBook(lambda: config().registration, clock=clock)
        self.book.on_change = self.wake
        self._wake = trio.Event()
        self._dirty = trio.Event()
        #: MACs whose device flags were fixed (or found fine) in this run.
        self.flags_done: set[str] = set()

    # --- inputs (sync, never block) ------------------------------------------------------------

    def wake(self) -> None:
        """Look again: a PBX session came, a phone fetched."""
        self._wake.set()

    def load(self, stored: dict[str, Lifecycle], records: Iterable[PhoneRecord]) -> None:
        self.book.load(stored, records)
        self._changed()

    def phone_changed(self, mac: str, record: PhoneRecord | None) -> None:
        """A directory listener: a phone stored (record) or removed (None)."""
        if record is None:
            self.book.on_remove(mac)
            self.flags_done.discard(mac)
        else:
            self.book.on_record(record)
        self._changed()

    def fetched(self, rows: Iterable[FetchRecord]) -> None:
        """Fetch records as written to the store."""
        for row in rows:
            self.book.on_fetch(row.mac, row.time)
        self._changed()

    def _changed(self) -> None:
        if self.book.dirty:
            self._dirty.set()

    # --- the loops -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flush_loop)
            task_status.started()
            await self._check_loop()

    async def _wait(self, until: float | None) -> None:
        """Until ``until`` (wall clock) or a wake-up, whichever first."""
        with trio.move_on_after(max(0.0, until - self._clock()) if until else float("inf")):
            await self._wake.wait()
        self._wake = trio.Event()

    async def _check_loop(self) -> None:
        limiter = trio.Semaphore(MAX_IN_FLIGHT)
        announced = False
        async with trio.open_nursery() as nursery:
            while True:
                settings = self._config().registration
                if not settings.enabled or not self.client.available:
                    if settings.enabled and not announced and self.book.due:
                        log.debug("registration.waiting_for_pbx_admin_api")
                        announced = True
                    await self._wait(None)
                    continue
                announced = False
                groups = self.book.due_groups(limit=1)
                if not groups:
                    await self._wait(self.book.next_due())
                    continue
                target, macs = groups[0]
                await limiter.acquire()
                nursery.start_soon(self._check, target, macs, limiter)
                await trio.sleep(1.0 / settings.max_per_second)

    async def _check(self, target: Target, macs: list[str], limiter: trio.Semaphore) -> None:
        try:
            await self._fix_flags(target, macs)
            try:
                result = await self.client.get_regs(cn=target.cn)
            except PbxAdminUnavailable:
                self.book.reschedule(macs)
            except PbxAdminError as exc:
                self.book.on_check_failed(macs, exc.reason)
            else:
                self.book.on_regs(macs, result)
            self._changed()
        finally:
            limiter.release()

    async def _fix_flags(self, target: Target, macs: list[str]) -> None:
        config = self._config()
        if not config.pbx.fix_device_flags or config.phones.sip_transport == "tls":
            return
        for mac in macs:
            if mac in self.flags_done:
                continue
            hw = self.book.targets[mac].hw if mac in self.book.targets else mac
            try:
                was = await self.client.clear_tls_only(cn=target.cn, hw=hw)
            except PbxAdminUnavailable:
                return
            except PbxAdminError as exc:
                log.warning(
                    "pbx.device_flags_not_fixed",
                    mac=mac,
                    user=target.user,
                    cn=target.cn,
                    setting="pbx.fix_device_flags",
                    error=exc.reason,
                )
                self.flags_done.add(mac)  # said once; the next run tries again
                continue
            self.flags_done.add(mac)
            if was is not None:
                log.info(
                    "pbx.device_tls_cleared",
                    mac=mac,
                    user=target.user,
                    cn=target.cn,
                    hw=was.hw,
                    reason=f"phones.sip_transport = {config.phones.sip_transport}",
                )

    async def _flush_loop(self) -> None:
        try:
            while True:
                await self._dirty.wait()
                self._dirty = trio.Event()
                await self._flush()
                await trio.sleep(FLUSH_INTERVAL)  # batch: at most one write per interval
        finally:
            with trio.CancelScope(shield=True):
                await self._flush()

    async def _flush(self) -> None:
        changed = self.book.take_dirty()
        if not changed:
            return
        try:
            await self._write(changed)
        except Exception as exc:  # the store refused: kept in memory, written next time
            log.error("registration.not_stored", count=len(changed), error=type(exc).__name__)
            self.book.dirty.update(c.mac for c in changed)
