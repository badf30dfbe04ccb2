"""End to end: ``provd phones keys`` on a running daemon changes the next file at once."""

import functools

import httpx
import trio

from provd.phones import Vendor
from provd.phones.examples import phone_request
from provd.sim import Phone

from .harness import cli, start_installation

PHONE = Phone(mac="00:15:65:00:00:11", user="kim", cn="Kim", password="Kim-Pwd-e2e-11")


async def test_keys_set_through_the_running_daemon_reach_the_file(tmp_path, nursery):
    """Keys set with the CLI are in the phone's next fetch, and the admin password too."""
    with trio.fail_after(60):
        sim, provd = await start_installation(nursery, tmp_path)
        (result,) = await sim.provision([PHONE])
        assert result.ok, result
        done = await trio.to_thread.run_sync(
            functools.partial(
                cli, "phones", "keys", PHONE.mac, "--set", "blf:201:Anna", provd=provd
            )
        )
        assert done.returncode == 0, done.stderr
        request = phone_request(Vendor.YEALINK, "001565000011")
        async with httpx.AsyncClient(base_url=provd.phones_url) as client:
            response = await client.get(request.path, headers={"User-Agent": request.user_agent})
        assert response.status_code == 200
        assert "linekey.1.type = 16\n" in response.text
        assert "linekey.1.value = 201\n" in response.text
        assert "static.security.user_password = admin:Admin-Pwd-e2e-42\n" in response.text
        assert await provd.stop() == 0
