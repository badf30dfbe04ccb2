"""The innovaphone mapping from PhoneData to SIP account 1."""

from __future__ import annotations

import pytest

from provd.phones import SipAccount
from provd.phones.account import MASK

from .phones_fixtures import DISPLAY, PASSWORD, make_phone


class TestSipAccount:
    def test_mapping(self):
        """dns is the registrar, usename the user, hwid the auth user, cn the display name."""
        account = SipAccount.from_phone(make_phone())
        assert (account.registrar, account.domain, account.user, account.auth_user) == (
            "pbx.example.com",
            "example.com",
            "zoe",
            "IP-HW-0042",
        )
        assert (account.password, account.display_name, account.label) == (
            PASSWORD,
            DISPLAY,
            DISPLAY,
        )

    @pytest.mark.parametrize(("transport", "port"), [("tls", 5061), ("tcp", 5060)])
    def test_transport_ports(self, transport, port):
        """TLS registers on 5061, TCP on 5060."""
        account = SipAccount.from_phone(make_phone(), transport)
        assert (account.transport, account.port) == (transport, port)

    def test_label_falls_back_to_user(self):
        """Without a display name the line label is the user name."""
        assert SipAccount.from_phone(make_phone(cn="")).label == "zoe"

    def test_udp_refused(self):
        """Only TLS and TCP are offered."""
        with pytest.raises(ValueError, match="transport"):
            SipAccount.from_phone(make_phone(), "udp")

    def test_masked(self):
        """masked() hides the password and nothing else."""
        account = SipAccount.from_phone(make_phone())
        assert account.masked().password == MASK
        assert account.masked().user == account.user
