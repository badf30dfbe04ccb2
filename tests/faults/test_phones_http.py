"""Issue 8, phones HTTP server: each found item against the real ``provd run`` process.

Phones are seeded straight into the store before the daemon starts (no PBX needed to serve
files); clients are loopback-only. A rotating-address scan is posed through
``X-Forwarded-For`` from a trusted proxy (127.0.0.1), the documented way such traffic
reaches provd behind a reverse proxy.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx
import pytest
import trio

from provd.exits import ExitStatus
from provd.phones.examples import phone_request
from provd.phones.identify import Vendor
from provd.protocol import crypto
from provd.store.database import Database

from ..e2e.harness import ProvdProcess

YEALINK = "805ec0aa0001"
OTHER = "805ec0aa0002"
SIP_PASSWORD = "Sip-Pwd-http-1"
DEVICE_PASSWORD = "0123456789abcdef0123456789abcdef"
TURN_PASSWORD = "Turn-Pwd-http-9"
_PHONES_HEAD = '[phones]\nlisten = "127.0.0.1:0"\n'


class PhonesProvd(ProvdProcess):
    """A provd child with extra ``[phones]`` keys, rewritten for SIGHUP tests."""

    def __init__(self, workdir: Path, phones: str = "") -> None:
        super().__init__(workdir)
        self.phones = phones

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        assert _PHONES_HEAD in text
        self.config_path.write_text(text.replace(_PHONES_HEAD, _PHONES_HEAD + self.phones))

    async def reload(self, phones: str) -> str:
        """Rewrite the ``[phones]`` keys, SIGHUP, and return the reloaded/refused log line."""
        self.phones = phones
        self.write_config()
        mark = len(self.lines)
        self.send_signal(signal.SIGHUP)
        match = await self.wait_for(r"event=daemon\.reload(ed|_refused).*", after=mark)
        return match.group(0)


def seed(workdir: Path, *, turn_seed: str | None = None) -> None:
    """Two provisioned Yealink phones; the first with a MEDIA item (TURN encrypted)."""
    db = Database(str(workdir / "provd.db"))
    for i, mac in enumerate((YEALINK, OTHER)):
        db.upsert_phone(
            mac=mac,
            code=f"{i:012d}",
            hwid=f"IP-{mac}",
            usename=f"user{i}",
            cn=f"User {i}",
            password=SIP_PASSWORD,
            domain="example.com",
            dns="pbx.example.com",
        )
        db.set_sysclient_password(mac, DEVICE_PASSWORD)
        db.put_config_item(mac, "PHONE", {"type": "PHONE", "coder": "G722,G711A"})
        db.set_state(mac, "provisioned")
    seed_text = turn_seed if turn_seed is not None else "seed-1234"
    db.put_config_item(
        YEALINK,
        "MEDIA",
        {
            "type": "MEDIA",
            "stunServer": "stun.example.com:3478",
            "turnServer": "turn.example.com:3478",
            "turnUser": "turnuser",
            "turnSeed": seed_text,
            "turnPassword": crypto.rc4_encrypt_hex(
                f"{seed_text[:64]}:{DEVICE_PASSWORD}", TURN_PASSWORD
            ),
        },
    )
    db.close()


async def start(nursery: trio.Nursery, workdir: Path, phones: str = "", **seed_kw) -> PhonesProvd:
    seed(workdir, **seed_kw)
    provd = PhonesProvd(workdir, phones)
    await provd.start(nursery)
    return provd


async def get(
    provd: PhonesProvd,
    mac: str = YEALINK,
    *,
    agent: str | None = None,
    auth: tuple[str, str] | None = None,
    forwarded: str | None = None,
) -> httpx.Response:
    request = phone_request(Vendor.YEALINK, mac)
    headers = {"User-Agent": request.user_agent if agent is None else agent}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    async with httpx.AsyncClient(base_url=provd.phones_url, auth=auth) as client:
        return await client.get(request.path, headers=headers)


def log_lines(provd: PhonesProvd, event: str) -> list[str]:
    return [line for line in provd.lines if f"event={event}" in line]


async def test_item5_long_turn_seed_still_served_without_turn(tmp_path, nursery):
    """A MEDIA item with a turnSeed too long to decrypt: 200 without TURN, one warning."""
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path, turn_seed="x" * 400)
        first, second = await get(provd), await get(provd)
        for response in (first, second):
            assert response.status_code == 200, response.text
            assert SIP_PASSWORD in response.text and "stun.example.com" in response.text
            assert "turn.example.com" not in response.text
        warnings = log_lines(provd, "phone.turn_password_undecryptable")
        assert len(warnings) == 1 and f"mac={YEALINK}" in warnings[0]
        assert "item=MEDIA" in warnings[0]
        assert (await get(provd, OTHER)).status_code == 200  # the daemon serves on
        assert await provd.stop() == 0


async def test_item5_broken_template_reload_refused(tmp_path, nursery):
    """A broken operator template on SIGHUP: reload refused naming file and error; served."""
    templates = tmp_path / "templates"
    (templates / "yealink").mkdir(parents=True)
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path)
        broken = templates / "yealink" / "phone.cfg.j2"
        broken.write_text("#!version:1.0.0.1\n{% for x in %}\n")
        line = await provd.reload(f'templates = "{templates}"\n')
        assert "event=daemon.reload_refused" in line
        assert str(broken) in line and "line 2" in line
        response = await get(provd)
        assert response.status_code == 200 and SIP_PASSWORD in response.text
        assert not log_lines(provd, "phones.render_failed")
        assert await provd.stop() == 0


async def test_item5_broken_template_at_start_is_a_start_failure(tmp_path, nursery):
    """A broken operator template at start-up is a refused config: provd exits 2 (the
    documented status for a refused config) with one line naming the file."""
    templates = tmp_path / "templates"
    (templates / "yealink").mkdir(parents=True)
    broken = templates / "yealink" / "phone.cfg.j2"
    broken.write_text("{{ account.no_such_field }}\n")
    seed(tmp_path)
    provd = PhonesProvd(tmp_path, f'templates = "{templates}"\n')
    with trio.fail_after(60):
        with pytest.raises(RuntimeError, match="exited"):
            await provd.start(nursery)
        assert provd.proc is not None and await provd.proc.wait() == ExitStatus.CONFIG
    (failed,) = log_lines(provd, "daemon.config_refused")
    assert str(broken) in failed and "no_such_field" in failed


async def test_item5_render_error_logged_once_naming_template_and_mac(tmp_path, nursery):
    """A template failing for one phone only: 500 for it, one line naming template and MAC."""
    templates = tmp_path / "templates"
    (templates / "yealink").mkdir(parents=True)
    template = templates / "yealink" / "phone.cfg.j2"
    template.write_text(f'{{% if mac == "{OTHER}" %}}{{{{ no_such_value }}}}{{% endif %}}ok\n')
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path, f'templates = "{templates}"\n')
        assert [(await get(provd, OTHER)).status_code for _ in range(3)] == [500] * 3
        assert (await get(provd)).status_code == 200
        (line,) = log_lines(provd, "phones.render_failed")
        assert str(template) in line and f"mac={OTHER}" in line and "no_such_value" in line
        assert await provd.stop() == 0


async def test_item6_sighup_applies_credentials(tmp_path, nursery):
    """Credentials added by SIGHUP apply at once; rotating them retires the old password."""
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path)
        assert (await get(provd)).status_code == 200
        line = await provd.reload('username = "phone"\npassword = "first-Pw"\n')
        assert "event=daemon.reloaded" in line
        assert (await get(provd)).status_code == 401
        assert (await get(provd, auth=("phone", "first-Pw"))).status_code == 200
        await provd.reload('username = "phone"\npassword = "second-Pw"\n')
        assert (await get(provd, auth=("phone", "first-Pw"))).status_code == 401
        response = await get(provd, auth=("phone", "second-Pw"))
        assert response.status_code == 200 and SIP_PASSWORD in response.text
        assert await provd.stop() == 0


async def test_item11_known_phone_never_throttled(tmp_path, nursery):
    """After many misses from its address a known phone still gets its file."""
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path)
        misses = [
            (await get(provd, f"805ec0ff{i:04x}")).status_code
            for i in range(25)  # more than the default miss_limit (20)
        ]
        assert misses[:20] == [404] * 20 and set(misses[20:]) == {429}
        response = await get(provd)
        assert response.status_code == 200 and SIP_PASSWORD in response.text
        assert log_lines(provd, "phones.throttled")
        assert await provd.stop() == 0


async def test_item11_rotating_scan_hits_global_budget(tmp_path, nursery):
    """A scan from ever new addresses (via a trusted proxy) gets 429; the phone still 200."""
    phones = 'trusted_proxies = ["127.0.0.1"]\nglobal_miss_burst = 10\nglobal_miss_rate = 0.001\n'
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path, phones)
        statuses = [
            (await get(provd, f"805ec0ff{i:04x}", forwarded=f"203.0.113.{i}")).status_code
            for i in range(15)
        ]
        assert statuses == [404] * 10 + [429] * 5
        assert any("scope=global" in line for line in log_lines(provd, "phones.throttled"))
        assert (await get(provd, forwarded="203.0.113.200")).status_code == 200
        assert await provd.stop() == 0


async def test_item11_forwarded_for_only_from_trusted_proxies(tmp_path, nursery):
    """X-Forwarded-For is honoured from a trusted proxy and ignored from anyone else."""
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path, 'trusted_proxies = ["::1"]\nmiss_limit = 3\n')
        statuses = [
            (await get(provd, f"805ec0ff{i:04x}", forwarded=f"203.0.113.{i}")).status_code
            for i in range(4)
        ]
        assert statuses == [404] * 3 + [429]  # 127.0.0.1 isn't trusted: one client
        await provd.reload('trusted_proxies = ["127.0.0.1"]\nmiss_limit = 3\n')
        statuses = [
            (await get(provd, f"805ec0fe{i:04x}", forwarded=f"203.0.113.{i}")).status_code
            for i in range(4)
        ]
        assert statuses == [404] * 4  # four clients now
        assert await provd.stop() == 0


async def test_item11_no_user_agent_refused(tmp_path, nursery):
    """A Yealink file asked for without a User-Agent (or without the MAC in it) is refused."""
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path)
        for agent in ("", "curl/8.5.0", "Yealink SIP-T46S 66.86.0.15"):
            response = await get(provd, agent=agent)
            assert response.status_code == 403 and SIP_PASSWORD not in response.text
        await provd.reload('anonymous_vendors = ["yealink"]\n')
        assert (await get(provd, agent="")).status_code == 200
        assert await provd.stop() == 0


async def test_item12_user_agent_capped_in_fetch_record(tmp_path, nursery):
    """A huge User-Agent is stored capped; the fetch is still recorded."""
    agent = phone_request(Vendor.YEALINK, YEALINK).user_agent + " " + "x" * 400
    with trio.fail_after(60):
        provd = await start(nursery, tmp_path)
        assert (await get(provd, agent=agent)).status_code == 200
        assert await provd.stop() == 0
    conn = sqlite3.connect(tmp_path / "provd.db")
    (stored,) = [row[0] for row in conn.execute("SELECT user_agent FROM fetches")]
    conn.close()
    assert 0 < len(stored) <= 256 and stored == agent[: len(stored)]
