"""Run a real Daemon in-process on loopback ports chosen by the OS."""

import pytest
import trio

from provd.actors.daemon import Daemon
from provd.config import Config

PASSWORD = "instance-Pa55"


def make_config(tmp_path, **sections):
    data = {
        "appservice": {"listen": "127.0.0.1:0", "password": PASSWORD, "login_timeout": 2.0},
        "phones": {"listen": "127.0.0.1:0"},
        "store": {"path": str(tmp_path / "provd.db")},
        "provisioning": {
            "timeout": 5.0,
            "backoff_initial": 0.05,
            "backoff_cap": 0.2,
            "handshake_timeout": 2.0,
        },
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Config.from_mapping(data)


@pytest.fixture
async def daemon(tmp_path, nursery):
    """A started daemon; yields (daemon, bound)."""
    d = Daemon(make_config(tmp_path))
    bound = await nursery.start(d.run)
    yield d, bound
    d.shutdown()
    await trio.testing.wait_all_tasks_blocked()
