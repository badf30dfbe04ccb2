"""``provd sim``: run the simulated innovaphone side (PBX + Users + Devices) standalone.

Loads ``--config FILE`` (TOML, see ``etc/sim.toml``) or the embedded default, starts the
Devices listeners and the PBX App object connecting to provd, provisions the configured
phones once provd is listed as publishing ``com.innovaphone.provisioning``, and keeps
running until Ctrl-C (exit 0). A bad config exits 2 with a message naming the key.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys

import attrs
import structlog
import trio

from .. import logs
from ..actors.control import serve_control
from ..sim import ConfigError, SimConfig, Simulator
from ..sim import control as sim_control
from ..sim.control import default_socket
from ..sim.domain import random_password
from . import sim_ctl

log = structlog.get_logger("provd.sim")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the simulated innovaphone PBX, Users and Devices against provd",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument(
        "--config",
        dest="sim_config",
        metavar="FILE",
        help="simulator TOML file, see etc/sim.toml (default: built-in)",
    )
    parser.add_argument(
        "--provd-url", metavar="URL", help="provd's app-service websocket URL (overrides provd.url)"
    )
    parser.add_argument(
        "--provd-password",
        metavar="PASSWORD",
        help="provd's instance password (overrides provd.password)",
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="overrides log_level"
    )
    parser.add_argument("--log-format", choices=["auto", "console", "kv", "json"], default="auto")
    parser.add_argument(
        "--no-provision",
        action="store_true",
        help="do not provision the configured phones on start",
    )
    parser.add_argument(
        "--control",
        metavar="PATH",
        help="control socket for `provd sim ctl` (overrides control_socket)",
    )
    parser.set_defaults(handler=main)
    sim_ctl.register(parser.add_subparsers(dest="sim_command", metavar="[ctl]"))


def load_config(args: argparse.Namespace) -> SimConfig:
    """The file (or default) with command-line overrides applied. Raises ConfigError."""
    path = getattr(args, "sim_config", None)
    config = SimConfig.from_toml(path) if path else SimConfig.default()
    provd = config.provd
    if args.provd_url:
        provd = attrs.evolve(provd, url=args.provd_url)
    if args.provd_password:
        provd = attrs.evolve(provd, password=args.provd_password)
    changes: dict = {"provd": provd}
    if args.log_level:
        changes["log_level"] = args.log_level
    if args.no_provision:
        changes["provision_on_start"] = False
    return attrs.evolve(config, **changes)


def _register_secrets(config: SimConfig) -> None:
    logs.register_secret(config.provd.password)
    logs.register_secret(config.devices.password)
    for domain in config.devices.domains:
        logs.register_secret(domain.admin_password)
        for cat in domain.categories:
            logs.register_secret(cat.turn_password)
    for phone in config.phones:
        logs.register_secret(phone.password)


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"provd sim: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level, fmt=args.log_format)
    _register_secrets(config)
    control = getattr(args, "control", None) or config.control_socket or default_socket()
    trio.run(_until_signalled, config, control)
    log.info("sim.stopped")
    return 0


async def _until_signalled(config: SimConfig, control: str | None = None) -> None:
    """Run until SIGINT (Ctrl-C) or SIGTERM, then stop cleanly."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(run, config, control=control))
            async for signum in signals:
                log.info("sim.signal", signal=signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


async def run(
    config: SimConfig,
    *,
    control: str | None = None,
    task_status: trio.TaskStatus[Simulator] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the simulator until cancelled; provision the configured phones once."""
    sim = Simulator(config)

    def issued_password() -> str:
        password = random_password()
        logs.register_secret(password)
        return password

    sim.domain.password_factory = issued_password
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(sim.run)
        if control:
            await nursery.start(serve_control, control, sim_control.handlers(sim))
        log.info(
            "sim.ready",
            provd=config.provd.url,
            devices=addresses.devices_url,
            sysclients=addresses.sysclients_url,
            passthrough=addresses.passthrough_base,
            myapps=addresses.myapps_url or "-",
        )
        task_status.started(sim)
        if config.provision_on_start and config.phones:
            if config.provd.url is None:
                log.warning("sim.no_provd_url")
                return
            await sim.pbx.watch.wait_until(
                lambda: sim.registry.find("com.innovaphone.provisioning")
            )
            results = await sim.provision(wait=float("inf"))
            for result in results:
                log.info(
                    "sim.provisioned",
                    mac=result.mac,
                    outcome=result.outcome,
                    error=result.error,
                    latency=round(result.latency, 3),
                )
