"""The running simulator's control socket: ``provd sim ctl ...`` drives it from outside.

Same framing as provd's own control socket (one JSON request per line on a Unix socket,
mode 0600, one JSON answer): :func:`provd.actors.control.serve_control`. Commands:

- ``status``: devices known to Devices, which are online, whether provd is listed.
- ``add``: provision one phone through the Users service (ProvisioningPhone), as an
  administrator adding a phone in the PBX would; answers with the result.
- ``remove``: delete a device from Devices (record, password, connection).
- ``push``: change a provisioning category (any ``[[devices.domains.categories]]`` key)
  and push the changed items to its connected devices.
- ``restart-devices``: restart the Devices app (every connection closed, state kept).
- ``register``: the phone ``mac`` registers at the PBX (from ``addr``), as PbxAdminApi
  ``GetRegs`` then shows; ``unregister``: its registration ends; ``never-register``
  (``register`` false/true): whether it registers after it fetched its file.

A bad request is answered ``{"ok": false, "error": ...}``; nothing a client sends stops the
simulator.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import structlog
import trio

from ..actors.control import Handler
from ..logs import register_secret
from ..protocol import ProtocolError
from ..protocol.messages import PROVISIONING_API
from .config import CategoryConfig
from .simulator import Simulator
from .users import Phone

log = structlog.get_logger("provd.sim.control")

#: Category keys ``push`` may change (all but the name), with their types.
PUSHABLE = {f.name: f.type for f in attrs.fields(CategoryConfig) if f.name not in ("name", "extra")}


def default_socket() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "provd-sim.sock")
    return f"/tmp/provd-sim-{os.getuid()}.sock"  # noqa: S108 - a 0600 socket, per user


def handlers(sim: Simulator) -> dict[str, Handler]:
    def guarded(handler: Handler) -> Handler:
        async def run(request: dict[str, Any]) -> dict[str, Any]:
            try:
                return await handler(request)
            except trio.TooSlowError:
                return {"ok": False, "error": "timed out (is provd listed by the PBX?)"}
            except ProtocolError as exc:
                return {"ok": False, "error": exc.reason}
            except Exception as exc:  # nothing a client sends stops the simulator
                return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

        return run

    async def status(_request: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "provd_listed": bool(sim.registry.find(PROVISIONING_API)),
            "devices": [
                {"mac": d.hw_id, "name": d.name, "online": d.online, "product": d.product}
                for d in sim.devices()
            ],
            "online": sorted(sim.online()),
            "registrations": [
                {"cn": o.cn, "hw": r.hw, "addr": r.addr}
                for o in sim.pbxadmin.objects.values()
                for r in o.regs
            ],
        }

    async def add(request: dict[str, Any]) -> dict[str, Any]:
        fields = {
            k: request[k]
            for k in ("mac", "user", "cn", "password", "category", "hwid")
            if request.get(k) is not None
        }
        for key, value in fields.items():
            if not isinstance(value, str):
                raise TypeError(f"{key} must be a string")
        phone = Phone(**fields)
        register_secret(phone.password)
        log.info("sim.ctl_add", mac=phone.mac, user=phone.user)
        (result,) = await sim.provision([phone], wait=float(request.get("wait", 30.0)))
        return {
            "ok": result.ok,
            "mac": result.mac,
            "outcome": result.outcome,
            "error": result.error,
        }

    async def remove(request: dict[str, Any]) -> dict[str, Any]:
        mac = request.get("mac")
        if not isinstance(mac, str):
            raise ValueError("mac missing")
        removed = await sim.faults.remove_device(Phone(mac=mac, user="").mac)
        return {"ok": True, "removed": removed}

    async def push(request: dict[str, Any]) -> dict[str, Any]:
        category = request.get("category")
        changes = request.get("changes")
        if not isinstance(category, str) or not isinstance(changes, dict) or not changes:
            raise ValueError("push needs a category and changes")
        typed = {key: _typed(key, value) for key, value in changes.items()}
        for key in typed:
            if key.endswith("password"):
                register_secret(typed[key])
        changed = await sim.faults.change_category(
            category, domain=request.get("domain") or None, **typed
        )
        return {"ok": True, "changed": sorted(changed)}

    def _mac(request: dict[str, Any]) -> str:
        mac = request.get("mac")
        if not isinstance(mac, str):
            raise ValueError("mac missing")
        return Phone(mac=mac, user="").mac

    async def register(request: dict[str, Any]) -> dict[str, Any]:
        addr = request.get("addr") or ""
        if not isinstance(addr, str):
            raise ValueError("addr must be a string")
        reg = sim.pbxadmin.register(_mac(request), addr=addr)
        if reg is None:
            return {"ok": False, "error": "no PBX user object has this phone's device"}
        return {"ok": True, "hw": reg.hw, "addr": reg.addr}

    async def unregister(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "removed": sim.pbxadmin.unregister(_mac(request))}

    async def never_register(request: dict[str, Any]) -> dict[str, Any]:
        never = request.get("never", True)
        if not isinstance(never, bool):
            raise ValueError("never must be true or false")
        sim.pbxadmin.set_rule(_mac(request), register=not never)
        return {"ok": True}

    async def restart_devices(_request: dict[str, Any]) -> dict[str, Any]:
        await sim.faults.restart_devices()
        return {"ok": True}

    return {
        name: guarded(h)
        for name, h in {
            "status": status,
            "add": add,
            "remove": remove,
            "push": push,
            "restart-devices": restart_devices,
            "register": register,
            "unregister": unregister,
            "never-register": never_register,
        }.items()
    }


def _typed(key: str, value: Any) -> Any:
    """A ``push`` value as the category field wants it (the CLI sends strings)."""
    if key not in PUSHABLE:
        raise ValueError(f"{key}: not a category key ({', '.join(sorted(PUSHABLE))})")
    if PUSHABLE[key] in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValueError(f"{key}: expected true or false")
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value
