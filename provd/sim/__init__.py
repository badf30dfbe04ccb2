"""``provd sim``: the innovaphone side (PBX, Users, Devices), faithful to the wire contract.

The simulator is product, not a mock: users run it to try provd, and provd's tests and
benchmarks run the real daemon against it over loopback sockets. See
:class:`~.simulator.Simulator` for the entry point and ``etc/sim.toml`` for the config.
"""

from .config import ConfigError, SimConfig
from .devices import DevicesAddresses, DevicesApp
from .domain import CODE_TTL, ROLLOUT_TTL, DevicesDomain
from .faults import Direction, Faults, Party
from .pbx import PbxStatus, SimPbx
from .simulator import SimAddresses, Simulator
from .users import Phone, ProvisionResult, UsersService

__all__ = [
    "CODE_TTL",
    "ROLLOUT_TTL",
    "ConfigError",
    "DevicesAddresses",
    "DevicesApp",
    "DevicesDomain",
    "Direction",
    "Faults",
    "Party",
    "PbxStatus",
    "Phone",
    "ProvisionResult",
    "SimAddresses",
    "SimConfig",
    "SimPbx",
    "Simulator",
    "UsersService",
]
