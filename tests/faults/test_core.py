"""Hardening of the daemon's core, against the real ``provd run`` process.

Each test plays one way the core used to end (or lie): a hostile control request, a store
that refuses writes, a config file in the wrong encoding, a second daemon, a database file
deleted under the running daemon, fetch records piling up, and start-up failures that must
end in one line with a priority, the key and the path or address, and a documented status.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from provd.actors import control
from provd.backoff import Backoff
from provd.exits import ExitStatus
from provd.phones import Vendor
from provd.phones.examples import phone_request
from provd.sim import Phone, Simulator
from provd.store.database import Database

from ..e2e.harness import ROOT, ProvdProcess, sim_config

MAC = "805ec0cc0001"


class CoreProvd(ProvdProcess):
    """A provd child whose ``[store]`` table gets ``store_extra`` lines."""

    def __init__(
        self, workdir: Path, *, store_extra: str = "", phones_extra: str = "", **kw
    ) -> None:
        super().__init__(workdir, **kw)
        self.store_extra = store_extra
        self.phones_extra = phones_extra

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        text = text.replace("[store]\n", "[store]\n" + self.store_extra, 1)
        self.config_path.write_text(text.replace("[phones]\n", "[phones]\n" + self.phones_extra, 1))

    @property
    def db_path(self) -> Path:
        return self.workdir / "provd.db"


def seed_phone(db_path: Path, mac: str = MAC) -> None:
    """A stored phone, as if provisioned before this start."""
    db = Database(str(db_path))
    db.upsert_phone(
        mac=mac,
        code="123456789012",
        hwid="",
        usename="zoe",
        cn="Zoe",
        password="Zoe-Pwd-core-1",
        domain="example.com",
        dns="pbx.example.com",
    )
    db.close()


def stored_macs(db_path: Path) -> set[str]:
    conn = sqlite3.connect(db_path)
    try:
        return {row[0] for row in conn.execute("SELECT mac FROM phones")}
    finally:
        conn.close()


def delete_database(db_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def is_socket(path: str) -> bool:
    return stat.S_ISSOCK(os.lstat(path).st_mode)


def raw_request(path: str, line: bytes) -> dict | None:
    """Send one raw request line on the control socket (blocking)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(line + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data) if data else None


async def ask(provd: ProvdProcess, cmd: str, **args) -> dict | None:
    return await trio.to_thread.run_sync(
        functools.partial(control.request, provd.socket, cmd, timeout=20.0, **args)
    )


async def run_to_exit(config: Path, cwd: Path) -> tuple[int, list[str]]:
    """``provd run --config config`` to its end: exit status and output lines."""
    result = await trio.run_process(
        [sys.executable, "-m", "provd", "run", "--config", str(config)],
        capture_stdout=True,
        stderr=subprocess.STDOUT,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )
    return result.returncode, result.stdout.decode("utf-8", "replace").splitlines()


def failure_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("<2>", "<3>"))]


# --- 2. the control socket --------------------------------------------------------------------


async def test_deeply_nested_control_command_is_refused_and_daemon_answers(tmp_path, nursery):
    """A request nested 2,000 levels deep gets an error reply; the daemon keeps serving."""
    with trio.fail_after(60):
        provd = CoreProvd(tmp_path)
        await provd.start(nursery)
        deep = b"[" * 2000 + b"]" * 2000  # fits MAX_REQUEST; recursion limit is 1,000
        answer = await trio.to_thread.run_sync(raw_request, provd.socket, deep)
        assert answer is not None and answer["ok"] is False
        assert "nested" in answer["error"]
        deep_dict = b'{"cmd": "status", "x": ' + b"[" * 1500 + b"]" * 1500 + b"}"
        answer = await trio.to_thread.run_sync(raw_request, provd.socket, deep_dict)
        assert answer is not None and answer["ok"] is False
        status = await ask(provd, "status")
        assert status is not None and status["ok"] is True
        assert provd.proc is not None and provd.proc.returncode is None
        assert await provd.stop() == 0


async def test_remove_while_store_refuses_writes_keeps_the_phone(tmp_path, nursery):
    """``phones remove`` while writes fail (file size limit = disk full): an error reply,
    the phone stays in the database and in memory; once writes work again, it is removed."""
    with trio.fail_after(60):
        provd = CoreProvd(tmp_path)
        seed_phone(provd.db_path)
        await provd.start(nursery)
        before = await ask(provd, "status")
        assert before is not None and before["phones"] == 1
        soft, hard = resource.prlimit(provd.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(provd.pid, resource.RLIMIT_FSIZE, (1, hard))  # every write: EFBIG
        try:
            answer = await ask(provd, "remove", mac=MAC)
        finally:
            resource.prlimit(provd.pid, resource.RLIMIT_FSIZE, (soft, hard))
        assert answer is not None and answer["ok"] is False, answer
        assert str(provd.db_path) in answer["error"]
        await provd.wait_for(f"event=store.operation_failed path={provd.db_path}")
        assert stored_macs(provd.db_path) == {MAC}
        after = await ask(provd, "status")
        assert after is not None and after["phones"] == 1 and after["actors"] == before["actors"]
        again = await ask(provd, "remove", mac=MAC)
        assert again == {"ok": True, "removed": True}
        assert stored_macs(provd.db_path) == set()
        assert (await ask(provd, "status"))["phones"] == 0
        assert await provd.stop() == 0


# --- 3. reload with a file that is not UTF-8 --------------------------------------------------


async def test_sighup_with_latin1_config_is_refused_and_daemon_stays(tmp_path, nursery):
    """A Latin-1 ß in the password: the reload is refused naming the file, the old config
    stays, the daemon keeps serving."""
    with trio.fail_after(60):
        provd = CoreProvd(tmp_path)
        await provd.start(nursery)
        text = provd.config_path.read_text()
        provd.config_path.write_bytes(
            text.replace(provd.password, "Stra\u00dfe-core").encode("latin-1")
        )
        mark = len(provd.lines)
        provd.send_signal(signal.SIGHUP)
        line = await provd.wait_for("event=daemon.reload_refused", after=mark)
        assert str(provd.config_path) in line.string and "UTF-8" in line.string
        assert line.string.startswith("<3>")
        status = await ask(provd, "status")
        # The daemon answers; it reports the refused file (ok false) and kept the old config.
        assert status is not None and status["reloads"] == 0
        assert status["ok"] is False and status["last_reload"]["ok"] is False
        assert await provd.stop() == 0


# --- 7. one daemon per database ---------------------------------------------------------------


async def test_second_daemon_on_same_database_refuses(tmp_path, nursery):
    """A second ``provd run`` on the same database exits LOCKED with one line naming the
    database; the first keeps its control socket and answers."""
    with trio.fail_after(60):
        provd = CoreProvd(tmp_path)
        await provd.start(nursery)
        status, lines = await run_to_exit(provd.config_path, tmp_path)
        assert status == ExitStatus.LOCKED == 6, lines
        (line,) = failure_lines(lines)
        assert line.startswith("<2>event=daemon.start_failed setting=store.path")
        assert f"path={provd.db_path}" in line
        assert not any("Traceback" in x for x in lines)
        answer = await ask(provd, "status")
        assert answer is not None and answer["ok"] is True
        assert await provd.stop() == 0


async def test_second_daemon_on_same_control_socket_refuses(tmp_path, nursery):
    """Another database but the same control socket: refused, the live socket kept."""
    with trio.fail_after(60):
        provd = CoreProvd(tmp_path)
        await provd.start(nursery)
        other = tmp_path / "other"
        other.mkdir()
        config = other / "provd.toml"
        config.write_text(
            provd.config_path.read_text().replace(str(provd.db_path), str(other / "o.db"))
        )
        status, lines = await run_to_exit(config, other)
        assert status == ExitStatus.LOCKED, lines
        (line,) = failure_lines(lines)
        assert "setting=control.socket" in line and f"path={provd.socket}" in line
        assert is_socket(provd.socket)
        answer = await ask(provd, "status")
        assert answer is not None and answer["ok"] is True
        assert await provd.stop() == 0


# --- 8. the database file lost while running --------------------------------------------------


async def test_database_deleted_while_running_stops_with_critical_line(tmp_path, nursery):
    """The db file deleted: the next write is not acknowledged, provd logs one critical
    line naming the path and exits STORE_LOST."""
    with trio.fail_after(60):
        provd = CoreProvd(tmp_path)
        seed_phone(provd.db_path)
        await provd.start(nursery)
        delete_database(provd.db_path)
        answer = await ask(provd, "remove", mac=MAC)
        assert not (answer or {}).get("ok"), answer  # never "ok" for a write into the void
        line = await provd.wait_for("^<2>event=store.lost")
        assert f"path={provd.db_path}" in line.string and "deleted" in line.string
        assert provd.proc is not None
        assert await provd.proc.wait() == ExitStatus.STORE_LOST == 7
        assert len(failure_lines(provd.lines)) == 1
        assert not any("Traceback" in x for x in provd.lines)


async def test_database_replaced_while_running_is_noticed_without_writes(tmp_path, nursery):
    """The db file replaced by another: the periodic check notices with no write at all."""
    with trio.fail_after(60):
        provd = CoreProvd(tmp_path, store_extra="check_interval = 0.2\n")
        await provd.start(nursery)
        replacement = tmp_path / "new.db"
        sqlite3.connect(replacement).close()
        os.replace(replacement, provd.db_path)
        line = await provd.wait_for("^<2>event=store.lost")
        assert "replaced" in line.string and f"path={provd.db_path}" in line.string
        assert provd.proc is not None
        assert await provd.proc.wait() == ExitStatus.STORE_LOST


# --- 12. fetch retention ----------------------------------------------------------------------


async def test_fetch_history_is_bounded_and_user_agents_cut(tmp_path, nursery):
    """40 fetches with a 2,000-character User-Agent: at most fetch_history (+ one prune
    batch) rows are kept, the newest among them, each User-Agent cut to max_user_agent."""
    with trio.fail_after(90):
        sim = Simulator(sim_config(), backoff=Backoff(initial=0.05, cap=0.3))
        await nursery.start(sim.run)
        provd = CoreProvd(
            tmp_path,
            store_extra="fetch_history = 5\nmax_user_agent = 64\n",
            # The junk User-Agents carry no MAC: allowed for Yealink in this test only.
            phones_extra='anonymous_vendors = ["yealink"]\n',
        )
        await provd.start(nursery)
        sim.set_provd(provd.appservice_url + "provd")
        phone = Phone(mac="805ec0cc0002", user="yuri", cn="Yuri", password="Yuri-Pwd-core-2")
        (result,) = await sim.provision([phone])
        assert result.ok, result
        request = phone_request(Vendor.YEALINK, phone.mac)
        async with httpx.AsyncClient(base_url=provd.phones_url) as client:
            for i in range(40):
                agent = request.user_agent if i % 2 else f"{i:04d}-" + "u" * 2000
                response = await client.get(request.path, headers={"User-Agent": agent})
                assert response.status_code == 200
        assert await provd.stop() == 0  # fetch records are committed at shutdown at the latest
        conn = sqlite3.connect(provd.db_path)
        rows = conn.execute(
            "SELECT user_agent FROM fetches WHERE mac = ? ORDER BY id", [phone.mac]
        ).fetchall()
        conn.close()
        assert 5 <= len(rows) <= 5 + 8, len(rows)
        assert all(len(ua) <= 64 for (ua,) in rows)
        assert rows[-1][0] == request.user_agent  # the newest is kept
        assert rows[-2][0] == "0038-" + "u" * 59


# --- 15. start-up failures --------------------------------------------------------------------


def _config(tmp_path: Path, **sections: dict[str, str]) -> Path:
    base = {
        "appservice": {"listen": '"127.0.0.1:0"'},
        "phones": {"listen": '"127.0.0.1:0"'},
        "store": {"path": f'"{tmp_path / "provd.db"}"'},
        "log": {"format": '"kv"'},
        "control": {"socket": f'"{tmp_path / "ctl.sock"}"'},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    path = tmp_path / "provd.toml"
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
            for name, values in base.items()
        )
    )
    return path


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("section", ["appservice", "phones"])
async def test_start_with_port_in_use(tmp_path, busy_port, section):
    """A listener's port in use: one <2> line naming the key and address, LISTEN (4)."""
    with trio.fail_after(60):
        config = _config(tmp_path, **{section: {"listen": f'"127.0.0.1:{busy_port}"'}})
        status, lines = await run_to_exit(config, tmp_path)
    assert status == ExitStatus.LISTEN == 4, lines
    (line,) = failure_lines(lines)
    assert line.startswith("<2>event=daemon.start_failed")
    assert f"setting={section}.listen" in line and f"address=127.0.0.1:{busy_port}" in line
    assert not any("Traceback" in x for x in lines)


async def test_start_with_tls_file_missing(tmp_path):
    """A missing TLS certificate: one <2> line naming the key and file, TLS (5)."""
    cert = tmp_path / "missing-cert.pem"
    with trio.fail_after(60):
        config = _config(
            tmp_path,
            appservice={"tls_cert": f'"{cert}"', "tls_key": f'"{tmp_path / "k.pem"}"'},
        )
        status, lines = await run_to_exit(config, tmp_path)
    assert status == ExitStatus.TLS == 5, lines
    (line,) = failure_lines(lines)
    assert "setting=appservice.tls_cert" in line and f"path={cert}" in line
    assert not any("Traceback" in x for x in lines)


async def test_start_with_unwritable_database(tmp_path):
    """The database cannot be created (its directory is a file): one <2> line naming
    store.path, STORE (3)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with trio.fail_after(60):
        config = _config(tmp_path, store={"path": f'"{blocker / "provd.db"}"'})
        status, lines = await run_to_exit(config, tmp_path)
    assert status == ExitStatus.STORE == 3, lines
    (line,) = failure_lines(lines)
    assert "setting=store.path" in line and str(blocker) in line
    assert not any("Traceback" in x for x in lines)


async def test_start_with_database_that_is_a_directory(tmp_path):
    """store.path names a directory: STORE (3), the path named."""
    (tmp_path / "dir.db").mkdir()
    with trio.fail_after(60):
        config = _config(tmp_path, store={"path": f'"{tmp_path / "dir.db"}"'})
        status, lines = await run_to_exit(config, tmp_path)
    assert status == ExitStatus.STORE, lines
    (line,) = failure_lines(lines)
    assert f"setting=store.path path={tmp_path / 'dir.db'}" in line


async def test_start_with_control_socket_unbindable(tmp_path):
    """The control socket's directory is a file: LISTEN (4) naming control.socket."""
    blocker = tmp_path / "f"
    blocker.write_text("")
    with trio.fail_after(60):
        config = _config(tmp_path, control={"socket": f'"{blocker / "c.sock"}"'})
        status, lines = await run_to_exit(config, tmp_path)
    assert status == ExitStatus.LISTEN, lines
    (line,) = failure_lines(lines)
    assert "setting=control.socket" in line and str(blocker) in line


async def test_start_with_latin1_config(tmp_path):
    """A config file that is not UTF-8 at start: one <3> line naming the file, CONFIG (2)."""
    path = tmp_path / "provd.toml"
    path.write_bytes('[appservice]\npassword = "Stra\u00dfe-core"\n'.encode("latin-1"))
    with trio.fail_after(60):
        status, lines = await run_to_exit(path, tmp_path)
    assert status == ExitStatus.CONFIG == 2, lines
    (line,) = failure_lines(lines)
    assert re.match(r"<3>event=daemon.config_refused", line) and str(path) in line
    assert not any("Traceback" in x for x in lines)
