"""Configuration (TOML, strict keys) and the ``provd sim`` command."""

import argparse
from pathlib import Path

import pytest
import trio

from provd.cli import sim as sim_cli
from provd.sim import ConfigError, SimConfig

from .helpers import HANG, PROVD_PASSWORD, FakeProvd, pbx_handshake

EXAMPLE = Path(__file__).parents[2] / "etc" / "sim.toml"


class TestConfig:
    def test_example_file_loads(self):
        """etc/sim.toml is valid and says what it documents."""
        config = SimConfig.from_toml(EXAMPLE)
        assert config.devices.domains[0].categories[0].extra[0]["type"] == "DIRECTORY"
        assert config.phones[0].mac == "00:15:65:11:22:33"

    def test_default_without_file(self):
        config = SimConfig.default()
        assert config.phones and config.devices.domains[0].categories

    @pytest.mark.parametrize(
        ("data", "key"),
        [
            ({"pbx": {"domian": "x"}}, "pbx.domian"),
            (
                {
                    "devices": {
                        "domains": [{"name": "d", "categories": [{"name": "c", "codr": "x"}]}]
                    }
                },
                "devices.domains[0].categories[0].codr",
            ),
            ({"devices": {"categories_per_result": "2"}}, "devices.categories_per_result"),
            ({"phones": [{"user": "u"}]}, "phones[0].mac"),
            ({"phones": [{"mac": "zz", "user": "u"}]}, "phones[0].mac"),
            ({"log_level": "loud"}, "log_level"),
        ],
    )
    def test_bad_key_named(self, data, key):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            SimConfig.from_mapping(data)

    def test_empty_url_means_unset(self):
        assert SimConfig.from_mapping({"provd": {"url": ""}}).provd.url is None


class TestCli:
    def parse(self, *argv):
        parser = argparse.ArgumentParser()
        sim_cli.register(parser.add_subparsers(dest="command"))
        return parser.parse_args(["sim", *argv])

    def test_bad_config_exits_2_naming_key(self, tmp_path, capsys):
        path = tmp_path / "bad.toml"
        path.write_text('[devices]\nlisten = "127.0.0.1:0"\nlistn = 1\n')
        args = self.parse("--config", str(path))
        assert args.handler(args) == 2
        assert "devices.listn" in capsys.readouterr().err

    def test_flags_override_file(self):
        args = self.parse(
            "--config",
            str(EXAMPLE),
            "--provd-url",
            "ws://h:1/p",
            "--provd-password",
            "pw",
            "--no-provision",
        )
        config = sim_cli.load_config(args)
        assert (config.provd.url, config.provd.password) == ("ws://h:1/p", "pw")
        assert config.provision_on_start is False

    def test_registered_in_main_parser(self):
        from provd.cli.main import build_parser

        args = build_parser().parse_args(["sim", "--provd-url", "ws://x/"])
        assert args.handler is sim_cli.main

    async def test_run_provisions_configured_phones(self, nursery):
        """The standalone runner provisions the configured phone once provd is listed."""
        fake = await FakeProvd().start(nursery)
        config = SimConfig.from_mapping(
            {
                "provd": {"url": fake.url, "password": PROVD_PASSWORD},
                "phones": [{"mac": "001565000001", "user": "u", "password": "p"}],
                "devices": {
                    "domains": [{"name": "example.com", "categories": [{"name": "Phones"}]}]
                },
            }
        )
        with trio.fail_after(HANG):
            sim = await nursery.start(sim_cli.run, config)
            await pbx_handshake(await fake.next_peer())
            users = await fake.next_peer()
            msg = await users.next()
        assert msg.mac == "001565000001" and sim.codes()[0].code == msg.code
