"""Logging: journald-friendly lines, levels, and secrets that never get out."""

import io

import pytest
import structlog

from provd import logs


@pytest.fixture
def out():
    stream = io.StringIO()
    logs.configure("info", fmt="kv", stream=stream)
    yield stream
    structlog.reset_defaults()


def test_priority_prefix_and_logfmt(out):
    """Lines start with a syslog priority and read as logfmt."""
    structlog.get_logger().warning("phone.thing", mac="112233445566")
    line = out.getvalue().strip()
    assert line == "<4>event=phone.thing mac=112233445566"


def test_level_filters(out):
    """Debug is dropped at info level; reconfiguring changes the level."""
    structlog.get_logger().debug("hidden")
    assert out.getvalue() == ""
    logs.configure("debug", fmt="kv", stream=out)
    structlog.get_logger().debug("shown")
    assert "<7>event=shown" in out.getvalue()


def test_secret_fields_masked(out):
    """Fields named like secrets are masked, nested ones too."""
    structlog.get_logger().info("x", password="hunter22", info={"digest": "abcd1234"})
    text = out.getvalue()
    assert "hunter22" not in text and "abcd1234" not in text and "********" in text


def test_registered_secret_scrubbed_from_any_value(out):
    """A registered secret is masked even inside free text and exceptions."""
    logs.register_secret("Zq9-very-secret")
    structlog.get_logger().error("failed", error="decrypt of Zq9-very-secret failed")
    try:
        raise ValueError("Zq9-very-secret")
    except ValueError:
        structlog.get_logger().exception("boom")
    assert "Zq9-very-secret" not in out.getvalue()


def test_json_format():
    """The json format emits one object per line after the prefix."""
    stream = io.StringIO()
    logs.configure("info", fmt="json", stream=stream)
    structlog.get_logger().info("e", mac="m")
    assert stream.getvalue().startswith('<6>{"event": "e", "mac": "m"')
    structlog.reset_defaults()


def test_many_secrets_all_scrubbed(out):
    """Past the automaton rebuild threshold, old and newly added secrets are all masked."""
    secrets = [f"bulk-secret-{i:04d}-x" for i in range(200)]
    for s in secrets:
        logs.register_secret(s)
    text = " ".join(secrets[::7] + secrets[-3:])
    structlog.get_logger().error("leak", error=text)
    logged = out.getvalue()
    assert not any(s in logged for s in secrets)
    assert logged.count("********") == len(secrets[::7]) + 3


def test_overlapping_secrets_masked(out):
    """A secret containing another secret is masked whole."""
    logs.register_secret("abcd-inner")
    logs.register_secret("outer-abcd-inner-tail")
    structlog.get_logger().info("x", error="outer-abcd-inner-tail")
    assert "inner" not in out.getvalue()
