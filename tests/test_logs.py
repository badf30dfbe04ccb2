"""Logging: journald-friendly lines, levels, and secrets that never get out."""

import io
import threading

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


def test_a_line_is_one_write():
    """Each line reaches the stream in one write, text and newline together: the journal's
    stream, or a pipe followed by the tests and the bench, wakes its reader once per line
    (issue 14: ``PrintLogger`` wrote them apart, two wake-ups per line)."""

    class Writes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def write(self, text: str) -> int:
            self.calls.append(text)
            return super().write(text)

    stream = Writes()
    logs.configure("info", fmt="kv", stream=stream)
    try:
        structlog.get_logger().info("phone.provisioned", mac="805ec0000001", items=4)
        structlog.get_logger().warning("phone.not_registered", mac="805ec0000001")
    finally:
        structlog.reset_defaults()
    assert stream.calls == [
        "<6>event=phone.provisioned mac=805ec0000001 items=4\n",
        "<4>event=phone.not_registered mac=805ec0000001\n",
    ]


def test_a_secret_among_other_values_is_masked_there_only(out):
    """A line's values are searched together first; the one holding a secret is masked and
    the others stay as they are, a secret split across two values is no secret."""
    logs.register_secret("Kx7-split-secret")
    log = structlog.get_logger()
    log.info("a", mac="805ec0000001", error="got Kx7-split-secret back", peer="127.0.0.1:5")
    log.info("b", first="Kx7-spl", second="it-secret")
    lines = out.getvalue().splitlines()
    assert lines[0] == '<6>event=a mac=805ec0000001 error="got ******** back" peer=127.0.0.1:5'
    assert lines[1] == "<6>event=b first=Kx7-spl second=it-secret"


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


# --- the registry is bounded, forgets, and never builds on the caller's thread ---------------


@pytest.fixture
def scrubber(monkeypatch, out):
    """A fresh registry for this test (the process-wide one is left alone)."""
    fresh = logs._SecretScrubber()
    monkeypatch.setattr(logs, "_secrets", fresh)
    yield fresh
    fresh.settle()


def test_long_secrets_cost_a_bounded_prefix_and_are_masked_whole(scrubber, out):
    """64 one-megabyte passwords take 64 short prefixes, not 64 MB; each is masked whole
    where it appears, and a cut-off copy is masked from its start to the end of the value."""
    secrets = [f"{i:03d}" + chr(0x41 + i % 26) * (1 << 20) for i in range(64)]
    for secret in secrets:
        logs.register_secret(secret, owner=f"mac{secret[:3]}")
    assert scrubber.settle()
    stats = scrubber.stats()
    assert stats["secrets"] == 64
    assert stats["chars"] <= 64 * logs.LONG_PREFIX
    structlog.get_logger().error("e", error=f"before {secrets[5]} after")
    structlog.get_logger().error("e", error=f"cut {secrets[6][:300]}")
    logged = out.getvalue()
    assert "FFFFFFFF" not in logged and "GGGGGGGG" not in logged
    assert "before ******** after" in logged and "cut ********" in logged


def test_total_is_capped_and_refusal_warned_once(scrubber, out, monkeypatch):
    """Past MAX_TOTAL_CHARS a new secret is refused with one warning; nothing grows."""
    monkeypatch.setattr(logs, "MAX_TOTAL_CHARS", 2000)
    for i in range(100):
        logs.register_secret(f"admin-{i:04d}-" + "p" * 2048)  # distinct 2 KB passwords
    assert scrubber.stats()["chars"] <= 2000
    assert out.getvalue().count("logs.secret_registry_full") == 1


def test_forgotten_secrets_are_dropped_shared_ones_kept(scrubber, out):
    """A removed phone's secret is forgotten; one another phone (or the process) still holds
    stays masked; a replaced password is forgotten for that phone only."""
    logs.register_secret("Alice-Sip-Pwd", owner="mac1")
    logs.register_secret("Shared-Admin-Pwd", owner="mac1")
    logs.register_secret("Shared-Admin-Pwd", owner="mac2")
    logs.register_secret("Instance-Pwd-x")
    logs.register_secret("Old-Dev-Pwd", owner="mac2")
    logs.register_secret("New-Dev-Pwd", owner="mac2")
    logs.forget_secret("Old-Dev-Pwd", owner="mac2")
    logs.forget_secrets("mac1")
    logs.forget_secrets("mac-never-seen")
    assert scrubber.stats()["secrets"] == 3
    structlog.get_logger().info(
        "x", error="Alice-Sip-Pwd Shared-Admin-Pwd Instance-Pwd-x Old-Dev-Pwd New-Dev-Pwd"
    )
    line = out.getvalue()
    assert "Alice-Sip-Pwd" in line and "Old-Dev-Pwd" in line  # forgotten: no longer masked
    for kept in ("Shared-Admin-Pwd", "Instance-Pwd-x", "New-Dev-Pwd"):
        assert kept not in line
    logs.forget_secrets("mac2")
    assert scrubber.stats() == {"secrets": 1, "words": 1, "chars": 14, "pending": 1, "owners": 0}


def test_forgotten_secret_ignored_by_the_old_automaton(scrubber, out):
    """After a build, a forgotten secret is no longer masked even before the next build."""
    for i in range(logs._REBUILD_AFTER):  # the last one starts a build that has them all
        logs.register_secret(f"built-secret-{i:03d}", owner=f"m{i}")
    assert scrubber.settle()
    assert scrubber.stats()["pending"] == 0
    logs.forget_secrets("m7")
    structlog.get_logger().info("x", error="built-secret-007 built-secret-008")
    assert "built-secret-007 ********" in out.getvalue()


def test_automaton_is_built_off_the_callers_thread(scrubber, out, monkeypatch):
    """Registering thousands of secrets never builds the automaton on the registering
    (event-loop) thread; every secret is masked before and after the build lands."""
    builders: list[threading.Thread] = []
    real = logs.ahocorasick.Automaton

    class Recording:
        def __init__(self):
            self._inner = real()
            self.add_word = self._inner.add_word
            self.iter = self._inner.iter

        def make_automaton(self):
            builders.append(threading.current_thread())
            return self._inner.make_automaton()

    monkeypatch.setattr(logs.ahocorasick, "Automaton", Recording)
    secrets = [f"distinct-admin-{i:05d}-" + "z" * 40 for i in range(3000)]
    for secret in secrets:
        logs.register_secret(secret, owner="domain")
    structlog.get_logger().error("early", error=" ".join(secrets[::97]))
    assert scrubber.settle()
    structlog.get_logger().error("late", error=" ".join(secrets[::89]))
    assert builders and threading.current_thread() not in builders
    logged = out.getvalue()
    assert not any(s in logged for s in secrets)
    assert logged.count("********") == len(secrets[::97]) + len(secrets[::89])


def test_phone_directory_forgets_a_replaced_password(scrubber, out):
    """The directory registers a phone's secrets under its MAC and forgets one the store
    replaced (a new device password), so the registry follows the phones it holds."""
    from provd.actors.state import PhoneDirectory
    from provd.store.records import PhoneRecord

    directory = PhoneDirectory()
    directory.put(PhoneRecord(mac="001565000001", code="1", sysclient_password="Old-Device-Pw-1"))
    directory.put(PhoneRecord(mac="001565000001", code="2", sysclient_password="New-Device-Pw-2"))
    structlog.get_logger().info("x", error="Old-Device-Pw-1 New-Device-Pw-2")
    assert "Old-Device-Pw-1 ********" in out.getvalue()
    directory.remove("001565000001")
    logs.forget_secrets("001565000001")
    assert scrubber.stats()["secrets"] == 0


def test_automaton_builds_cost_a_bounded_number_of_words_per_secret(scrubber, out, monkeypatch):
    """Issue 14: the automaton doubles, so registering N secrets builds O(N) words into
    automata in all (before, a build every 1,024 new words rebuilt all of them: O(N^2),
    seconds of CPU per build at 10,000 phones); every secret is masked throughout."""
    built: list[int] = []
    real = logs.ahocorasick.Automaton

    class Counting:
        def __init__(self):
            self._inner = real()
            self.iter = self._inner.iter
            self.remove_word = self._inner.remove_word
            built.append(0)

        def add_word(self, word, value):
            built[-1] += 1
            return self._inner.add_word(word, value)

        def make_automaton(self):
            return self._inner.make_automaton()

    monkeypatch.setattr(logs.ahocorasick, "Automaton", Counting)
    count = 3000
    secrets = [f"grow-{i:05d}-secret" for i in range(count)]
    for secret in secrets:
        logs.register_secret(secret, owner=secret[5:10])
        assert scrubber.settle()  # each build when it is due, none skipped by a race
    assert sum(built) <= 2 * count, built
    structlog.get_logger().error("e", error=" ".join(secrets[::101] + secrets[-2:]))
    logged = out.getvalue()
    assert not any(s in logged for s in secrets)
    assert logged.count("********") == len(secrets[::101]) + 2
