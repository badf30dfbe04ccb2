"""The command line: version, help, and refusals that say what is wrong."""

import pytest

from provd import __version__
from provd.cli.main import main


def test_version(capsys):
    """--version prints the version."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"provd {__version__}"


def test_help_lists_every_command(capsys):
    """Without a command, help is printed (exit 2), naming every command."""
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in ("run", "sim", "demo", "phones", "status", "render"):
        assert command in out


def test_run_refuses_bad_config_naming_the_key(tmp_path, capsys):
    """provd run with a broken config exits 2 and names the key."""
    path = tmp_path / "bad.toml"
    path.write_text('[appservice]\nlisten = "8090"\n')
    assert main(["run", "--config", str(path)]) == 2
    assert "appservice.listen" in capsys.readouterr().err


def test_phones_show_bad_mac(tmp_path, capsys, monkeypatch):
    """A malformed MAC is refused with a reason."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROVD_CONFIG", raising=False)
    assert main(["phones", "show", "not-a-mac"]) == 2
    assert "12 hex digits" in capsys.readouterr().err


def test_status_when_not_running(tmp_path, capsys, monkeypatch):
    """status without a daemon says so and exits 3 (LSB: not running)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROVD_CONFIG", raising=False)
    assert main(["status"]) == 3
    assert "not running" in capsys.readouterr().out
