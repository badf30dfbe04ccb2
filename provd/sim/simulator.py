"""One entry object for the whole simulated innovaphone installation.

:class:`Simulator` wires the parts that share state as one installation would: the Devices
app (API + sysclients + passthrough) on one :class:`~.domain.DevicesDomain`, the PBX App
object connecting to provd, and the Users service, all listing each other through one
:class:`~.services.ServiceRegistry`. Nothing is shared with provd: every exchange with it
crosses a real socket.

Typical use (the daemon's end-to-end tests)::

    sim = Simulator(SimConfig.default())            # or SimConfig.from_toml(path)
    addresses = await nursery.start(sim.run)        # listeners bound (port 0 works)
    sim.set_provd("ws://127.0.0.1:8090/provd", "provd-demo-password")  # if not in the config
    await sim.pbx.wait_logged_in()
    results = await sim.provision([Phone(mac="001565112233", user="alice", password="pw")])
    assert all(r.ok for r in results)
    await sim.wait_online("001565112233")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

import attrs
import httpx
import structlog
import trio

from ..backoff import Backoff
from ..phones.examples import phone_request
from ..phones.identify import Vendor
from ..protocol import normalize_mac
from ..protocol.messages import DEVICES_API, PROVISIONING_API, Device
from .config import SimConfig
from .devices import DevicesApp
from .domain import CodeRecord, DevicesDomain
from .faults import Faults
from .myapps import MyAppsShell
from .pbx import SimPbx
from .pbxadmin import PbxAdminState
from .pbxapi import PbxApiState
from .services import ServiceEntry, ServiceRegistry
from .users import Phone, ProvisionResult, UsersService, phones_from_config
from .watch import Watch

log = structlog.get_logger("provd.sim")


@attrs.frozen
class SimAddresses:
    """Reported by :meth:`Simulator.run` through ``nursery.start``."""

    #: The Devices service URL as ServicesInfo lists it (ends with ``/``).
    devices_url: str
    #: ``devices_url + "sysclients"``.
    sysclients_url: str
    #: Passthrough base: append ``<MAC>/<GetLoginInfo key>/<path>``.
    passthrough_base: str
    #: The simulated myApps shell page embedding provd's admin App ("": none).
    myapps_url: str = ""


class Simulator:
    """The simulated PBX + Users + Devices.

    Args:
        config: the configuration (default: :meth:`SimConfig.default`).
        clock: UNIX time for code validity (tests inject a fake one).
        backoff: the PBX's reconnect back-off (tests inject a fast one).

    Attributes:
        faults: :class:`~.faults.Faults` knobs.
        pbx: the :class:`~.pbx.SimPbx` (``pbx.status``, ``pbx.wait_logged_in()``).
        users: the :class:`~.users.UsersService`.
        domain: the Devices state (read it through the views below in tests).
        devices_app: the running Devices app.
        addresses: set once :meth:`run` reported readiness.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config or SimConfig.default()
        self.faults = Faults()
        self.watch = Watch()
        self._changes = 0
        self._saved_at = 0
        self.domain = DevicesDomain(
            self.config.devices.domains, clock=clock, on_change=self._domain_changed
        )
        self.registry = ServiceRegistry(numeric_errors=self.config.pbx.numeric_errors)
        self.pbxapi = PbxApiState(self.config.pbx.users, self.config.pbx.node)
        #: PbxAdminApi: user objects and registrations (``pbx.admin_api``).
        self.pbxadmin = PbxAdminState(self.config.pbx, on_change=lambda: self.pbx.watch.notify())
        self.pbx = SimPbx(
            self.config,
            self.registry,
            self.pbxapi,
            self.faults,
            backoff=backoff,
            pbxadmin=self.pbxadmin,
        )
        self.devices_app = DevicesApp(self.config.devices, self.domain, self.faults, self.watch)
        self.users = UsersService(self.config, self.registry, self.faults)
        self.faults.bind(self.devices_app)
        self.addresses: SimAddresses | None = None
        #: Wakes after each write of the state file.
        self.saved = Watch()

    async def run(
        self, *, task_status: trio.TaskStatus[SimAddresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start the Devices listeners and the PBX; run until cancelled.

        Reports :class:`SimAddresses` once the listeners are bound (the PBX may still be
        connecting: wait with ``sim.pbx.wait_logged_in()``).
        """
        state_file = self.config.state_file
        if state_file and await trio.Path(state_file).exists():
            data = json.loads(await trio.Path(state_file).read_text(encoding="utf-8"))
            self.domain.load_json(data)
            log.info("sim.state_loaded", file=state_file, devices=len(self.domain.devices))
        async with trio.open_nursery() as nursery:
            dev = await nursery.start(self.devices_app.run)
            devices = self.config.devices
            self.registry.set(
                ServiceEntry(
                    name=devices.service_name,
                    url=dev.url,
                    password=devices.password,
                    title=devices.title,
                    apis={DEVICES_API: {}},
                )
            )
            if state_file:
                nursery.start_soon(self._save_state, state_file)
            nursery.start_soon(self.pbx.run)
            myapps_url = ""
            if self.config.myapps.listen:
                shell = MyAppsShell(self.pbx)
                myapps_url = await nursery.start(shell.run, self.config.myapps.listen)
            self.addresses = SimAddresses(
                dev.url, dev.sysclients_url, dev.passthrough_base, myapps_url=myapps_url
            )
            task_status.started(self.addresses)

    def _domain_changed(self) -> None:
        self._changes += 1
        self.watch.notify()

    @property
    def unsaved_changes(self) -> int:
        """Devices-state changes not yet in the state file."""
        return self._changes - self._saved_at

    async def _save_state(self, path: str) -> None:
        """Write the state after every change; changes made during a write are not lost
        (the loop compares counters instead of waiting for the next notification)."""
        while True:
            await self.watch.wait_until(lambda: self._changes != self._saved_at)
            changes = self._changes
            tmp = trio.Path(path + ".tmp")
            await tmp.write_text(json.dumps(self.domain.to_json(), indent=1), encoding="utf-8")
            await tmp.replace(path)
            self._saved_at = changes
            self.saved.notify()

    # --- driving it --------------------------------------------------------------------------

    def set_provd(self, url: str | None = None, password: str | None = None) -> None:
        """Point the PBX (and the Users service) at provd; reconnects at once if waiting."""
        self.pbx.set_provd(url, password)

    def move_devices(self, url: str) -> None:
        """List the Devices service under another URL (pushes a new ServicesInfo). The
        listener itself does not move: point it at a proxy, or at nothing, to test failover."""
        self.registry.update(self.config.devices.service_name, url=url)

    async def provision(
        self,
        phones: Iterable[Phone] | None = None,
        *,
        phone_timeout: float | None = None,
        wait: float = 30.0,
    ) -> list[ProvisionResult]:
        """Run the Users service over ``phones`` (default: the configured ones).

        Waits up to ``wait`` seconds for provd to be listed as publishing
        ``com.innovaphone.provisioning`` (i.e. for the PBX to have logged in and got
        provd's AppInfoResult), then sends one phone at a time.

        Args:
            phones: :class:`Phone` objects.
            phone_timeout: per-phone result timeout (default ``users.timeout``).
            wait: seconds to wait for provd to be listed.

        Returns:
            One :class:`ProvisionResult` per phone, in order.

        Raises:
            trio.TooSlowError: provd was not listed within ``wait``.
        """
        phones = list(phones) if phones is not None else phones_from_config(self.config)
        for phone in phones:  # the Users service creates the user object and its device first
            self.pbxadmin.ensure_user(
                mac=phone.mac,
                cn=phone.cn or phone.user,
                h323=phone.user,
                hw=phone.hwid or phone.mac,
            )
        with trio.fail_after(wait):
            await self.pbx.watch.wait_until(
                lambda: self.registry.services_info().find(PROVISIONING_API)
            )
        return await self.users.provision(phones, phone_timeout=phone_timeout)

    # --- read-only views for tests ----------------------------------------------------------

    def devices(self) -> list[Device]:
        """Every device Devices knows, as the API shows it (``online`` included)."""
        return [self.domain.device_view(d) for d in self.domain.devices.values()]

    def device(self, mac: str) -> Device | None:
        record = self.domain.devices.get(normalize_mac(mac))
        return self.domain.device_view(record) if record else None

    def sysclient_password(self, mac: str) -> str | None:
        """The device's current sysclient password (what provd should have stored)."""
        record = self.domain.devices.get(normalize_mac(mac))
        return record.password if record else None

    def passwords_issued(self, mac: str) -> list[str]:
        return list(self.domain.passwords_issued.get(normalize_mac(mac), []))

    def codes(self) -> list[CodeRecord]:
        """Copies of every issued code (``mac`` set once used)."""
        return [attrs.evolve(c) for c in self.domain.codes.values()]

    def online(self) -> set[str]:
        """MACs with an admitted sysclient connection now."""
        return self.devices_app.online_macs()

    async def fetch_file(
        self,
        phones_url: str,
        vendor: Vendor,
        mac: str,
        model: str | None = None,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """A simulated phone of ``vendor`` (``model``) fetches its file from provd's phone
        server at ``phones_url``, with that phone's path and User-Agent; once it got it
        (200) it registers at the PBX as its knob says (:meth:`PbxAdminState.set_rule`,
        ``[[pbx.registrations]]``)."""
        mac = normalize_mac(mac)
        request = phone_request(vendor, mac, model)
        headers = {"User-Agent": request.user_agent}
        if client is None:
            async with httpx.AsyncClient(base_url=phones_url, timeout=10) as own:
                response = await own.get(request.path, headers=headers)
        else:
            response = await client.get(phones_url.rstrip("/") + request.path, headers=headers)
        if response.status_code == 200:
            reg = self.pbxadmin.phone_fetched(mac)
            log.info("sim.phone_fetched", mac=mac, registered=reg is not None)
        return response

    async def wait_registered(self, mac: str, registered: bool = True) -> None:
        """Return once the phone ``mac`` is (or is no longer) registered at the PBX."""
        await self.pbx.watch.wait_until(
            lambda: (self.pbxadmin.registration(mac) is not None) == registered
        )

    async def wait_online(self, mac: str, online: bool = True) -> None:
        """Return once the device's sysclient is (or is no longer) connected."""
        mac = normalize_mac(mac)
        await self.watch.wait_until(lambda: (mac in self.devices_app.online_macs()) == online)
