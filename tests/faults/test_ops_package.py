"""Issue 13 (operations), finding 4 and "a real install": the Debian package is built from
the repository by its one documented command, installed into a clean root (dpkg-deb -x),
its unit passes `systemd-analyze verify` there, and the installed provd, started the way
the unit starts it (Type=notify: READY=1 on $NOTIFY_SOCKET), answers /healthz."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = "lib/systemd/system/provd.service"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    built = subprocess.run(
        [str(ROOT / "packaging" / "build-deb.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    deb = Path(built.stdout.strip().splitlines()[-1])
    assert deb.exists() and deb.suffix == ".deb"
    return deb


@pytest.fixture(scope="module")
def installed(package, tmp_path_factory) -> Path:
    """The package unpacked into a clean root."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(package), str(root)], check=True, timeout=120)
    return root


def field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_package_layout(package, installed):
    """venv under /opt/provd, provd on the PATH, the unit, the conffile, the docs where
    Documentation= points, man page and completions; no build path left inside."""
    assert field(package, "Package") == "provd"
    assert "python3" in field(package, "Depends")
    conffiles = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(package)], capture_output=True, check=True
    ).stdout
    assert b"conffiles" in conffiles
    listing = subprocess.run(
        ["dpkg-deb", "-I", str(package), "conffiles"], capture_output=True, text=True
    ).stdout
    assert listing.strip() == "/etc/provd/provd.toml"
    assert os.readlink(installed / "usr/bin/provd") == "/opt/provd/bin/provd"
    assert (installed / "opt/provd/bin/provd").read_text().startswith("#!/opt/provd/bin/python")
    unit = (installed / UNIT).read_text()
    assert "ExecStart=/usr/bin/provd run --config /etc/provd/provd.toml" in unit
    assert "ExecReload=/usr/bin/provd reload --config /etc/provd/provd.toml" in unit
    assert "LoadCredential=tls:/etc/provd/tls" in unit
    docs = re.search(r"^Documentation=(.*)$", unit, re.M).group(1).split()
    for uri in docs:
        if uri.startswith("file://"):
            assert (installed / uri.removeprefix("file:///")).is_file(), uri
    assert "man:provd(1)" in docs
    page = gzip.decompress((installed / "usr/share/man/man1/provd.1.gz").read_bytes()).decode()
    assert page.startswith(".TH PROVD") and "check\\-config" in page and "reload" in page
    bash = (installed / "usr/share/bash-completion/completions/provd").read_text()
    assert "check-config" in bash and "--config" in bash
    assert (installed / "usr/share/zsh/vendor-completions/_provd").is_file()
    assert (installed / "etc/provd/provd.toml").read_text() == (ROOT / "etc/provd.toml").read_text()
    assert (installed / "etc/provd/tls").stat().st_mode & 0o777 == 0o700
    leftovers = subprocess.run(
        [
            "grep",
            "-rlI",
            "/tmp/",
            str(installed / "opt/provd/bin"),
            str(installed / "opt/provd/pyvenv.cfg"),
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert leftovers == ""


def test_unit_verifies_in_the_installed_root(installed, tmp_path):
    """`systemd-analyze verify` is clean for the installed unit (the root also gets the
    host's systemd units, as an install on a systemd host has them)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (apt-get install systemd)"
    root = tmp_path / "root"
    shutil.copytree(installed, root, symlinks=True)
    shutil.copytree("/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    env = {**os.environ, "MANPATH": str(root / "usr/share/man")}
    verify = subprocess.run(
        [analyze, "verify", f"--root={root}", "provd.service"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    (root / "opt/provd/bin/provd").unlink()  # the check is real: a missing binary fails it
    broken = subprocess.run(
        [analyze, "verify", f"--root={root}", "provd.service"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert broken.returncode != 0 and "/usr/bin/provd" in broken.stderr


def test_installed_provd_starts_and_reaches_healthz(installed, tmp_path):
    """The installed provd (its own venv, nothing from this checkout), started with the
    unit's ExecStart and a notify socket as systemd would, is READY and answers /healthz,
    /readyz and `provd status`; SIGTERM stops it cleanly."""
    python = installed / "opt/provd/bin/python"
    script = installed / "opt/provd/bin/provd"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(python), "-c", "import provd; print(provd.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(installed / "opt/provd/lib")), where

    short = Path(tempfile.mkdtemp(prefix="provd-pkg-", dir="/tmp"))  # AF_UNIX paths are short
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "provd.toml"
    text = (installed / "etc/provd/provd.toml").read_text()
    for old, new in {
        'listen = "127.0.0.1:8090"': 'listen = "127.0.0.1:0"',
        'listen = "127.0.0.1:8091"': 'listen = "127.0.0.1:0"',
        'listen = "127.0.0.1:9090"': 'listen = "127.0.0.1:0"',
        'path = "/var/lib/provd/provd.db"': f'path = "{state / "provd.db"}"',
        'socket = ""': f'socket = "{short / "ctl.sock"}"',
        'format = "auto"': 'format = "kv"',
        'password = "example-only-change-me-0123456789"': 'password = "Package-Test-Secret-42"',
    }.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    config.write_text(text)

    unit = (installed / UNIT).read_text()
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
    assert exec_start[0] == "/usr/bin/provd"
    argv = [str(python), str(script), *exec_start[1:]]
    argv[argv.index("/etc/provd/provd.toml")] = str(config)

    check = subprocess.run(
        [str(python), str(script), "check-config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(short / "notify"))
    notify.settimeout(60)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=state,
        env={**env, "NOTIFY_SOCKET": str(short / "notify")},
    )
    try:
        messages = notify.recv(4096).decode()
        assert "READY=1" in messages.splitlines(), messages
        health = ""
        for line in proc.stdout:
            if match := re.search(r"event=metrics\.listening addresses=(\S+)", line):
                health = match.group(1)
                break
        assert health.startswith("http://127.0.0.1:")
        assert httpx.get(health + "/healthz", timeout=10).status_code == 200
        ready = httpx.get(health + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["ready"] is True
        status = subprocess.run(
            [str(python), str(script), "status", "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert status.returncode == 0 and "provd 0." in status.stdout, status
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        notify.close()
        shutil.rmtree(short)
