"""Issue 13 (operations): journald-native logging. Entries are read back from a journal
socket the test binds, parsed per https://systemd.io/JOURNAL_NATIVE_PROTOCOL/."""

from __future__ import annotations

import array
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import structlog

from provd import journal, logs

from ..e2e.harness import ROOT, ProvdProcess


def parse(data: bytes) -> dict[str, str]:
    """One native-protocol entry: KEY=value lines, or KEY\\n<le64 length><value>\\n."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = end + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + size]
            assert data[end + 9 + size : end + 10 + size] == b"\n"
            i = end + 10 + size
        fields[key.decode()] = value.decode()
    return fields


def receive(sock: socket.socket) -> dict[str, str]:
    """One entry, as a datagram or as a memfd passed with SCM_RIGHTS."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if fds:
        fd = fds[0]
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    return parse(data)


@pytest.fixture
def journal_socket(monkeypatch):
    directory = tempfile.mkdtemp(prefix="provd-j-", dir="/tmp")  # AF_UNIX paths are short
    path = f"{directory}/socket"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    monkeypatch.setenv(journal.SOCKET_ENV, path)
    yield sock
    sock.close()
    os.unlink(path)
    os.rmdir(directory)
    structlog.reset_defaults()


def test_event_fields_become_journal_fields(journal_socket, tmp_path):
    """PRIORITY, SYSLOG_IDENTIFIER, MESSAGE, PROVD_EVENT and a PROVD_ field per key;
    secrets scrubbed; multi-line values in the binary-safe form; huge entries via memfd."""
    fallback = (tmp_path / "stderr").open("w")
    logs.configure("info", fmt="journal", stream=fallback)
    logs.register_secret("Very-Secret-Pwd-77")
    log = structlog.get_logger("provd.test")
    log.warning(
        "sysclient.disconnected",
        mac="805ec0aa0001",
        peer="127.0.0.1:4000",
        reason="bad Very-Secret-Pwd-77",
        password="Very-Secret-Pwd-77",
        attempt=3,
    )
    got = receive(journal_socket)
    assert got["PRIORITY"] == "4"
    assert got["SYSLOG_IDENTIFIER"] == "provd"
    assert got["PROVD_EVENT"] == "sysclient.disconnected"
    assert got["PROVD_MAC"] == "805ec0aa0001"
    assert got["PROVD_PEER"] == "127.0.0.1:4000"
    assert got["PROVD_ATTEMPT"] == "3"
    assert got["MESSAGE"].startswith("event=sysclient.disconnected ")
    assert "Very-Secret-Pwd-77" not in str(got)
    assert got["PROVD_PASSWORD"] == logs.MASK

    log.error("daemon.broken", detail="line one\nline two")
    got = receive(journal_socket)
    assert got["PRIORITY"] == "3" and got["PROVD_DETAIL"] == "line one\nline two"

    log.info("phones.big", blob="x" * 400_000)  # larger than any datagram
    got = receive(journal_socket)
    assert got["PROVD_EVENT"] == "phones.big" and len(got["PROVD_BLOB"]) == 400_000
    fallback.close()
    assert (tmp_path / "stderr").read_text() == ""  # nothing fell back


def test_auto_uses_the_journal_only_when_stderr_is_it(journal_socket, tmp_path, monkeypatch):
    """fmt auto: native entries when $JOURNAL_STREAM names this stream, else text lines;
    with the journal socket gone, lines fall back to the stream."""
    stream = (tmp_path / "stderr").open("w+")
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
    logs.configure("info", fmt="auto", stream=stream)
    structlog.get_logger().info("not.journal", mac="805ec0aa0001")
    stream.flush()
    assert (tmp_path / "stderr").read_text() == "<6>event=not.journal mac=805ec0aa0001\n"

    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    logs.configure("info", fmt="auto", stream=stream)
    structlog.get_logger().info("to.journal", mac="805ec0aa0002")
    assert receive(journal_socket)["PROVD_MAC"] == "805ec0aa0002"

    monkeypatch.setenv(journal.SOCKET_ENV, str(tmp_path / "nobody-listens"))
    logs.configure("info", fmt="auto", stream=stream)
    structlog.get_logger().warning("fell.back")
    stream.flush()
    assert (tmp_path / "stderr").read_text().endswith("<4>event=fell.back\n")


def test_daemon_under_systemd_logs_to_the_journal(journal_socket, tmp_path):
    """`provd run` started as systemd starts it (stderr = $JOURNAL_STREAM) sends native
    entries: daemon.ready arrives with its fields, filterable by PROVD_EVENT."""
    provd = ProvdProcess(tmp_path)
    provd.write_config()
    stderr = (tmp_path / "stderr").open("w")
    st = os.fstat(stderr.fileno())
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
        journal.SOCKET_ENV: journal_socket.getsockname(),
    }
    text = provd.config_path.read_text().replace('format = "kv"', 'format = "auto"')
    provd.config_path.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "provd", "run", "--config", str(provd.config_path)],
        stdout=stderr,
        stderr=stderr,
        env=env,
        cwd=tmp_path,
    )
    try:
        events = []
        while not events or events[-1]["PROVD_EVENT"] != "daemon.ready":
            events.append(receive(journal_socket))
        ready = events[-1]
        assert ready["PRIORITY"] == "6" and ready["SYSLOG_IDENTIFIER"] == "provd"
        assert ready["PROVD_APPSERVICE"].startswith("ws://127.0.0.1:")
        assert all(e["PROVD_EVENT"] for e in events)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr.close()
    assert "Traceback" not in Path(tmp_path / "stderr").read_text()
