"""The config object: defaults, TOML loading, and refusals that name the key."""

import pytest

from provd.config import DEFAULT_PASSWORD, Config, ConfigError


def test_embedded_defaults_work_on_a_laptop(monkeypatch):
    """Without a file: loopback listeners, SQLite in the working directory."""
    monkeypatch.delenv("PROVD_CONFIG", raising=False)
    config = Config.load(None)
    assert config.appservice.listen == "127.0.0.1:8090"
    assert config.phones.listen == "127.0.0.1:8091"
    assert config.store.path == "provd.db"
    assert config.appservice.password == DEFAULT_PASSWORD
    assert config.source is None


def test_env_var_names_the_file(tmp_path, monkeypatch):
    """$PROVD_CONFIG is used when --config is not given."""
    path = tmp_path / "p.toml"
    path.write_text('[appservice]\npassword = "s3cret-s3cret"\n[log]\nlevel = "debug"\n')
    monkeypatch.setenv("PROVD_CONFIG", str(path))
    config = Config.load(None)
    assert (config.appservice.password, config.log.level) == ("s3cret-s3cret", "debug")
    assert config.source == str(path)


def test_example_file_in_etc_loads():
    """etc/provd.toml is a valid config."""
    config = Config.from_toml("etc/provd.toml")
    assert config.appservice.title == "provd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[appservice]\nlisten = "nowhere"\n', "appservice.listen"),
        ('[appservice]\nlisten = "127.0.0.1:99999"\n', "appservice.listen"),
        ('[appservice]\npasword = "x"\n', "appservice.pasword: unknown key"),
        ('[appservice]\npassword = ""\n', "appservice.password"),
        ("[appservice]\npassword = 5\n", "appservice.password: must be str"),
        ('[log]\nlevel = "loud"\n', "log.level"),
        ('[store]\npath = ""\n', "store.path"),
        ("[nope]\n", "nope: unknown section"),
        ('[phones]\nsip_transport = "udp"\n', "phones.sip_transport"),
        ("[provisioning]\ntimeout = -1\n", "provisioning.timeout"),
        ('[appservice]\ntls_cert = "c.pem"\n', "tls_cert/tls_key"),
        ("appservice = 3\n", "appservice: must be a table"),
        ("[[[", "not valid TOML"),
    ],
)
def test_bad_config_refused_naming_the_key(tmp_path, text, message):
    """Each broken file is refused with a message that names the key and problem."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Config.from_toml(path)


def test_missing_file_refused(tmp_path):
    """A config path that does not exist is refused, not defaulted."""
    with pytest.raises(ConfigError, match="cannot read"):
        Config.from_toml(tmp_path / "missing.toml")


def test_int_accepted_for_float():
    """timeout = 5 (an int) is accepted for a float setting."""
    config = Config.from_mapping({"provisioning": {"timeout": 5}})
    assert config.provisioning.timeout == 5.0


def test_control_socket_next_to_db():
    """The control socket defaults to the db path with .sock."""
    config = Config.from_mapping({"store": {"path": "/var/lib/provd/provd.db"}})
    assert config.control_socket == "/var/lib/provd/provd.sock"
