"""Issue 13 (operations), findings 2, 3, 5, 7 and 9: a CLI that finds the daemon, reads
without creating, is quiet on a closed pipe, and config checks an operator can rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import provd.config
from provd.cli import run as run_cli
from provd.cli.main import build_parser, main
from provd.config import DEFAULT_PASSWORD, Config, ConfigError
from provd.store.database import Database

ROOT = Path(__file__).resolve().parents[2]
MAC = "000b82aa0003"
GOOD = "Long-enough-secret-42"


@pytest.fixture(autouse=True)
def _no_system_config(tmp_path, monkeypatch):
    """No test here sees a real /etc/provd/provd.toml or $PROVD_CONFIG."""
    monkeypatch.setattr(provd.config, "SYSTEM_CONFIG", str(tmp_path / "absent.toml"), raising=False)
    monkeypatch.delenv("PROVD_CONFIG", raising=False)


def write_config(tmp_path: Path, password: str = GOOD, extra: str = "") -> Path:
    path = tmp_path / "provd.toml"
    path.write_text(
        f'[appservice]\npassword = "{password}"\n'
        f'[store]\npath = "{tmp_path / "state" / "provd.db"}"\n'
        f'[control]\nsocket = "{tmp_path / "ctl.sock"}"\n' + extra
    )
    return path


def with_phone(config_path: Path) -> Database:
    db = Database(Config.from_toml(config_path).store.path)
    db.upsert_phone(
        mac=MAC,
        code="123456789012",
        hwid=MAC,
        usename="chloe",
        cn="Chloé",
        password="Chloe-Pwd-1",
        domain="example.com",
        dns="pbx.example.com",
    )
    return db


# --- finding 2: the CLI finds the daemon's config; read-only commands create nothing ------


def test_system_config_is_the_default_when_it_exists(tmp_path, monkeypatch):
    """Without --config or $PROVD_CONFIG, /etc/provd/provd.toml is used when it exists."""
    system = write_config(tmp_path)
    monkeypatch.setattr(provd.config, "SYSTEM_CONFIG", str(system), raising=False)
    assert Config.load(None).source == str(system)
    monkeypatch.setenv("PROVD_CONFIG", str(tmp_path / "other.toml"))
    with pytest.raises(ConfigError, match=r"other\.toml"):  # the explicit variable wins
        Config.load(None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{}", "status"],
        ["status", "--config", "{}"],
        ["--config", "{}", "phones", "list"],
        ["phones", "--config", "{}", "list"],
        ["phones", "list", "--config", "{}"],
        ["render", MAC, "--config", "{}"],
        ["--config", "{}", "render", MAC],
        ["reload", "--config", "{}"],
        ["--config", "{}", "check-config"],
    ],
)
def test_config_accepted_before_or_after_the_command(tmp_path, argv):
    """One --config, before or after the subcommand, reaches every command."""
    path = str(write_config(tmp_path))
    args = build_parser().parse_args([a.format(path) for a in argv])
    assert args.config == path


@pytest.mark.parametrize(
    "argv",
    [["phones", "list"], ["phones", "show", MAC], ["render", MAC], ["phones", "remove", MAC]],
)
def test_read_commands_never_create_a_database(tmp_path, monkeypatch, capsys, argv):
    """An absent database is reported (non-zero) and nothing is created."""
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main([*argv, "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "no database at" in err and "state/provd.db" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_phones_list_reads_without_leaving_files(tmp_path, capsys):
    """Reading an existing, closed store leaves no -wal/-shm files behind; liveness is
    'unknown' while no daemon runs."""
    config = write_config(tmp_path)
    with_phone(config).close()
    before = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert main(["phones", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert MAC in out and "unknown" in out
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == before


# --- finding 3: render takes the path a phone asks for; quiet on a closed pipe ----------


def test_render_accepts_the_request_path(tmp_path, capsys):
    """`render MAC --file /Grandstream/cfgMAC.xml` renders that file."""
    config = write_config(tmp_path)
    with_phone(config).close()
    argv = ["render", MAC, "--file", f"/Grandstream/cfg{MAC}.xml", "--config", str(config)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "<gs_provision" in out and "Chloe-Pwd-1" not in out
    assert main(["render", MAC, "--file", f"cfg{MAC}.xml", "--config", str(config)]) == 0
    other = "/Grandstream/cfg000b82aa0009.xml"
    assert main(["render", MAC, "--file", other, "--config", str(config)]) == 2
    assert "000b82aa0009" in capsys.readouterr().err


def test_closed_pipe_ends_quietly(tmp_path):
    """`provd phones show MAC | head` with the reader gone: no BrokenPipeError traceback."""
    config = write_config(tmp_path)
    with_phone(config).close()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before provd writes anything
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(ROOT)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "provd", "phones", "show", MAC, "--config", str(config)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


# --- finding 7 (small parts): run --log-level, check-config, LICENSE, package data -------


def test_run_log_level_overrides_the_file(tmp_path, monkeypatch):
    """`provd run --log-level debug` runs the daemon at debug whatever the file says."""
    seen = []

    class FakeDaemon:
        def __init__(self, config):
            seen.append(config.log.level)

        async def run(self):
            return None

    monkeypatch.setattr(run_cli, "Daemon", FakeDaemon)
    config = write_config(tmp_path, extra='[log]\nlevel = "warning"\nformat = "kv"\n')
    assert main(["run", "--config", str(config), "--log-level", "debug"]) == 0
    assert main(["--config", str(config), "run"]) == 0
    assert seen == ["debug", "warning"]


def test_check_config(tmp_path, capsys):
    """check-config: 0 for a good file, 2 naming the key for a bad one, warnings for the
    published example password; the shipped example passes."""
    good = write_config(tmp_path)
    assert main(["check-config", str(good)]) == 0
    assert f"{good}: ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[phones]\nsip_transport = "udp"\n')
    assert main(["check-config", str(bad)]) == 2
    assert "phones.sip_transport" in capsys.readouterr().err
    missing = write_config(tmp_path, extra='[phones]\ntemplates = "/nonexistent/tpl"\n')
    assert main(["check-config", "--config", str(missing)]) == 2
    assert "phones.templates" in capsys.readouterr().err
    assert main(["check-config", str(ROOT / "etc" / "provd.toml")]) == 0
    assert "published example password" in capsys.readouterr().err


def test_license_and_package_data_match_what_ships():
    """LICENSE exists (pyproject says MIT) and every package-data file named exists."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "MIT" in (ROOT / "LICENSE").read_text()
    assert "MIT" in json.dumps(project["project"]["license"])
    for package, patterns in project["tool"]["setuptools"]["package-data"].items():
        base = ROOT / package.replace(".", "/")
        for pattern in patterns:
            assert list(base.glob(pattern)), f"{package}: {pattern} matches nothing"


# --- finding 9: weak passwords -----------------------------------------------------------


@pytest.mark.parametrize("password", ["x", "short-pw-11"])
def test_short_instance_password_refused(tmp_path, password):
    """A password under 12 characters is refused, naming the key."""
    with pytest.raises(ConfigError, match=r"appservice\.password: must be at least 12"):
        Config.from_toml(write_config(tmp_path, password=password))


def test_example_and_default_passwords_are_flagged():
    """The published example and the embedded laptop default load but are flagged; the
    laptop default keeps `provd demo` and a config-less `provd run` working."""
    password_warnings = provd.config.password_warnings
    example = Config.from_toml(ROOT / "etc" / "provd.toml")
    assert example.appservice.password == provd.config.EXAMPLE_PASSWORD
    assert password_warnings(example)
    assert password_warnings(Config()) and Config().appservice.password == DEFAULT_PASSWORD
    assert password_warnings(Config.from_mapping({"appservice": {"password": GOOD}})) == []
