"""systemd integration: READY, RELOADING, STOPPING and WATCHDOG over $NOTIFY_SOCKET."""

import os
import signal

import trio

from provd.actors.daemon import Daemon

from .conftest import make_config


async def next_notification(sock) -> set[str]:
    data = await sock.recv(4096)
    return set(data.decode().split("\n"))


async def test_ready_reloading_stopping_watchdog(tmp_path, monkeypatch, nursery):
    """The daemon tells systemd it is ready, reloading, stopping, and alive."""
    path = str(tmp_path / "notify.sock")
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    await sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    daemon = Daemon(make_config(tmp_path))
    stopped = trio.Event()

    async def run():
        await daemon.run()
        stopped.set()

    with trio.fail_after(10):
        nursery.start_soon(run)
        seen: set[str] = set()
        while "READY=1" not in seen:
            seen |= await next_notification(sock)
        while "WATCHDOG=1" not in seen:
            seen |= await next_notification(sock)
        assert daemon.reload()
        reload_msgs = await next_notification(sock)
        while "RELOADING=1" not in reload_msgs:
            reload_msgs = await next_notification(sock)
        assert any(m.startswith("MONOTONIC_USEC=") for m in reload_msgs)
        while "READY=1" not in await next_notification(sock):
            pass
        os.kill(os.getpid(), signal.SIGTERM)  # trio's signal receiver takes it
        while "STOPPING=1" not in await next_notification(sock):
            pass
        await stopped.wait()


async def test_refused_reload_keeps_config(tmp_path, nursery):
    """A broken config file on reload is refused; the running config stays."""
    path = tmp_path / "provd.toml"
    path.write_text('[log]\nlevel = "info"\n')
    config = make_config(tmp_path)
    config = type(config)(
        **{
            **{
                k: getattr(config, k)
                for k in ("appservice", "phones", "store", "provisioning", "control", "log")
            },
            "source": str(path),
        }
    )
    daemon = Daemon(config)
    await nursery.start(daemon.run)
    path.write_text("[log]\nlevel = 7\n")
    assert not daemon.reload()
    assert daemon.config is config
    path.write_text('[log]\nlevel = "debug"\n')
    assert daemon.reload()
    assert daemon.config.log.level == "debug" and daemon.reloads == 1
    daemon.shutdown()
