"""Issue 11, item 3: ``provd phones add`` — the daemon side (in-process) and the CLI side.

The daemon side is called as the control socket calls it, with the simulator around an
in-process daemon; the CLI side runs ``main(argv)`` against a control socket nobody (or a
test double) serves, and parses CSV text.
"""

import json
import socket
import threading

import pytest
import trio
from structlog.testing import capture_logs

from provd.cli.main import build_parser, main
from provd.cli.phones_add import parse_csv, read_password_file

from .test_devices_session import ask, installed

MAC = "001565ee0001"
PASSWORD = "Alice-Sip-Pwd-7"
ALICE = {
    "sip": "alice",
    "cn": "Alice Example",
    "dn": "Alice",
    "devices": [{"hw": "00:15:65:EE:00:01", "text": "desk"}],
}
BOB = {"sip": "bob", "cn": "Bob", "devices": [{"hw": "bob-softphone"}]}
PBX = {"users": [ALICE, BOB]}


async def add(daemon, **fields):
    return await ask(
        daemon, "phones_add", **{"mac": MAC, "category": "Phones", "password": PASSWORD, **fields}
    )


class TestDaemon:
    async def test_added_phone_is_provisioned_with_pbx_data(self, tmp_path):
        """A code from Devices (for the user's SIP name), the user's cn and device entry
        from the PBX, then the ProvisioningPhone path: the phone registers with the code
        and is served. The password reaches no log event."""
        async with installed(tmp_path, pbx=PBX) as (daemon, sim):
            with trio.fail_after(20), capture_logs() as logs:
                answer = await ask(
                    daemon,
                    "phones_add",
                    mac=MAC,
                    user="alice",
                    category="Phones",
                    password=PASSWORD,
                )
            assert answer["ok"], answer
            record = daemon.directory.get(MAC)
            (used,) = [c for c in sim.codes() if c.code == answer["code"]]
        assert used.mac == MAC and used.sip == "alice"  # the identify used provd's code
        assert record.state == "provisioned" and record.code == answer["code"]
        assert (record.usename, record.cn, record.hwid) == (
            "alice",
            "Alice Example",
            ALICE["devices"][0]["hw"],
        )
        assert (record.domain, record.dns) == ("example.com", "pbx.example.com")
        assert record.password == PASSWORD
        assert daemon.directory.data(MAC) is not None  # its file is served
        assert PASSWORD not in repr(logs)
        assert any(e["event"] == "phones_add.ok" for e in logs)

    async def test_user_without_device_entry_says_how_to_fix(self, tmp_path):
        """No device entry for the hwid: the error names user, hwid, what it has and the fix;
        no code is taken from Devices."""
        async with installed(tmp_path, pbx=PBX) as (daemon, sim):
            with trio.fail_after(10):
                answer = await ask(
                    daemon, "phones_add", mac=MAC, user="bob", category="Phones", password=PASSWORD
                )
            assert not sim.codes()
        assert not answer["ok"]
        assert "user bob has no device entry with hardware id 001565ee0001" in answer["error"]
        assert "bob-softphone" in answer["error"] and "--hwid" in answer["error"]
        assert "Devices tab" in answer["error"]

    async def test_hwid_option_picks_the_entry(self, tmp_path):
        """--hwid names another device entry of the user; it is the phone's hwid. The user
        may be named by the Long Name (cn) too; the phone gets the SIP name."""
        async with installed(tmp_path, pbx=PBX) as (daemon, _sim):
            with trio.fail_after(20):
                answer = await ask(
                    daemon,
                    "phones_add",
                    mac=MAC,
                    user="Bob",
                    category="Phones",
                    hwid="BOB-softphone",
                    password=PASSWORD,
                )
            assert answer["ok"], answer
            record = daemon.directory.get(MAC)
            assert (record.hwid, record.usename) == ("bob-softphone", "bob")

    async def test_unknown_user_and_unknown_category(self, tmp_path):
        """An unknown user is named; a category Devices does not know is Devices' refusal."""
        async with installed(tmp_path, pbx=PBX) as (daemon, _sim):
            with trio.fail_after(10):
                nobody = await ask(
                    daemon, "phones_add", mac=MAC, user="zed", category="Phones", password="x"
                )
                nocat = await ask(
                    daemon, "phones_add", mac=MAC, user="alice", category="Nope", password="x"
                )
        assert not nobody["ok"] and "user zed" in nobody["error"]
        assert nocat == {
            "ok": False,
            "error": "Devices refused GetProvisioningCode: unknown category",
        }

    async def test_pbx_without_admin_api_named(self, tmp_path):
        """A PBX App object not enabled for PbxAdminApi: the error says what to tick."""
        async with installed(tmp_path, pbx={**PBX, "admin_api": False}) as (daemon, _sim):
            with trio.fail_after(10):
                answer = await ask(
                    daemon, "phones_add", mac=MAC, user="alice", category="Phones", password="x"
                )
        assert not answer["ok"] and "does not offer PbxAdminApi" in answer["error"]


class TestCsv:
    def test_positional_rows(self):
        """Three to five columns; MACs normalised; blank and # lines skipped."""
        rows, errors = parse_csv(
            "00:15:65:00:00:01,alice,Phones\n\n# comment\n"
            "001565000002,bob,Phones,bob-hw,S3cret,\n001565000003,carl,Desk,hw3,Pw3\n"
        )
        assert [r.mac for r in rows] == ["001565000001", "001565000003"]
        assert rows[1].hwid == "hw3" and rows[1].password == "Pw3"
        assert [str(e) for e in errors] == [
            "line 4: 6 columns, expected 3 to 5 (mac,user,category[,hwid][,password])"
        ]
        assert "S3cret" not in repr(errors) and "Pw3" not in repr(rows)

    def test_header_names_columns_in_any_order(self):
        """A header line names the columns; order is free."""
        rows, errors = parse_csv("user,MAC,category,password\nalice,001565000001,Phones,pw\n")
        assert not errors and (rows[0].mac, rows[0].user) == ("001565000001", "alice")
        assert rows[0].password == "pw"
        rows, errors = parse_csv("mac,category,user\n001565000001,Phones,alice\n")
        assert not errors and (rows[0].user, rows[0].category) == ("alice", "Phones")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("zz:15,alice,Phones\n", "line 1, column mac: 'zz:15' is not a MAC address"),
            ("001565000001,,Phones\n", "line 1, column user: empty"),
            ("001565000001,alice,\n", "line 1, column category: empty"),
            (
                "001565000001,a,P\n00-15-65-00-00-01,b,P\n",
                "line 2, column mac: 001565000001 already on line 1",
            ),
            ("mac,user,colour\n", "line 1, column colour: unknown column"),
            ("mac,user\n", "line 1, column category: missing from the header"),
            ("mac,user,category\n001565000001,a\n", "line 2: 2 columns, the header has 3"),
        ],
    )
    def test_bad_rows_named_by_line_and_column(self, text, message):
        """Each bad row's error names its line and column."""
        _rows, errors = parse_csv(text)
        assert str(errors[-1]).startswith(message)

    def test_bad_rows_do_not_stop_the_others(self):
        """Good rows around bad ones are all kept."""
        rows, errors = parse_csv("001565000001,a,P\nbad,b,P\n001565000003,c,P\n")
        assert [r.line for r in rows] == [1, 3] and [e.line for e in errors] == [2]


def _config(tmp_path, socket_path):
    path = tmp_path / "provd.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "provd.db"}"\n[control]\nsocket = "{socket_path}"\n'
    )
    return str(path)


class FakeDaemon:
    """A control socket that answers every request with ``answer`` and records requests."""

    def __init__(self, path: str, answer) -> None:
        self.requests: list[dict] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    data += conn.recv(65536)
                request = json.loads(data)
                self.requests.append(request)
                conn.sendall(json.dumps(self.answer(request)).encode() + b"\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_socket(tmp_path_factory):
    import tempfile

    return tempfile.mkdtemp(prefix="provd-", dir="/tmp") + "/ctl.sock"


class TestCli:
    def test_password_is_never_an_argument(self):
        """There is no --password option: argv (visible in ps) never carries it."""
        with pytest.raises(SystemExit):
            build_parser().parse_args(["phones", "add", MAC, "--password", "x"])

    def test_no_daemon_named(self, tmp_path, short_socket, capsys):
        """Without a daemon the CLI names the control socket and what to start."""
        config = _config(tmp_path, short_socket)
        assert main(["devices", "categories", "--config", config]) == 1
        err = capsys.readouterr().err
        assert f"no daemon answers on the control socket {short_socket}" in err
        assert "provd run" in err

    def test_daemon_error_printed(self, tmp_path, short_socket, capsys):
        """An error answer (e.g. no PBX session) is printed as the daemon says it."""
        daemon = FakeDaemon(short_socket, lambda _r: {"ok": False, "error": "no PBX session: x"})
        try:
            config = _config(tmp_path, short_socket)
            assert main(["devices", "code", "--category", "Phones", "--config", config]) == 1
        finally:
            daemon.close()
        assert capsys.readouterr().err == "provd: no PBX session: x\n"

    def test_code_printed_in_local_time_and_utc(self, tmp_path, short_socket, capsys):
        """The code and its validity, local time and UTC."""
        answer = {"ok": True, "code": "123456789012", "valid_until": 1_800_000_000}
        daemon = FakeDaemon(short_socket, lambda _r: answer)
        try:
            config = _config(tmp_path, short_socket)
            assert (
                main(["devices", "code", "--category", "P", "--rollout", "--config", config]) == 0
            )
        finally:
            daemon.close()
        out = capsys.readouterr().out
        assert "123456789012" in out and "2027-01-15 08:00:00 UTC" in out
        assert daemon.requests[0] == {
            "cmd": "devices_code",
            "category": "P",
            "sip": None,
            "rollout": True,
        }

    def test_csv_summary_and_password_file(self, tmp_path, short_socket, capsys):
        """Bulk add: bad rows reported by line and column, good rows sent with the CSV's or
        the file's password (never printed), a summary table; exit 1 when any failed."""
        (tmp_path / "pw").write_text("From-File-Pw-1\nignored\n")
        (tmp_path / "pw").chmod(0o600)
        (tmp_path / "phones.csv").write_text(
            "mac,user,category,password\n"
            "001565000001,alice,Phones,Csv-Pw-2\n"
            "nope,bob,Phones,\n"
            "001565000003,carl,Phones,\n"
        )
        (tmp_path / "phones.csv").chmod(0o600)

        def answer(request):
            if request["user"] == "carl":
                return {"ok": False, "error": "user carl has no device entry"}
            return {"ok": True, "code": "1"}

        daemon = FakeDaemon(short_socket, answer)
        try:
            config = _config(tmp_path, short_socket)
            argv = ["phones", "add", "--csv", str(tmp_path / "phones.csv")]
            status = main([*argv, "--password-file", str(tmp_path / "pw"), "--config", config])
        finally:
            daemon.close()
        captured = capsys.readouterr()
        assert status == 1
        sent = {r["user"]: r["password"] for r in daemon.requests}
        assert sent == {"alice": "Csv-Pw-2", "carl": "From-File-Pw-1"}
        lines = captured.out.splitlines()
        assert lines[0].split() == ["LINE", "MAC", "USER", "RESULT", "REASON"]
        assert lines[2].split()[:4] == ["2", "001565000001", "alice", "ok"]
        assert "column mac: 'nope' is not a MAC address" in lines[3]
        assert "user carl has no device entry" in lines[4]
        assert lines[-1] == "1 ok, 2 failed"
        assert "line 3, column mac" in captured.err and "3/3" not in captured.out
        for secret in ("Csv-Pw-2", "From-File-Pw-1"):
            assert secret not in captured.out + captured.err

    def test_password_file_errors(self, tmp_path):
        """An empty or missing password file is refused, naming the file."""
        (tmp_path / "empty").write_text("\n")
        with pytest.raises(ValueError, match="empty"):
            read_password_file(str(tmp_path / "empty"))
        with pytest.raises(ValueError, match="missing"):
            read_password_file(str(tmp_path / "missing"))
