"""The [phones] settings section."""

from __future__ import annotations

import pytest

from provd.phones import PhonesSettings


class TestFromMapping:
    def test_defaults(self):
        """An empty section gives the documented defaults."""
        s = PhonesSettings.from_mapping({})
        assert (s.listen, s.sip_transport, s.miss_limit, s.miss_window) == (
            "127.0.0.1:8091",
            "tls",
            20,
            60.0,
        )
        assert s.tls is False

    def test_values(self):
        """Given values are taken, integers accepted for the window."""
        s = PhonesSettings.from_mapping(
            {
                "listen": "[::1]:0",
                "sip_transport": "tcp",
                "miss_window": 5,
                "username": "u",
                "password": "p",
            }
        )
        assert (s.listen, s.sip_transport, s.miss_window, s.username) == (
            "[::1]:0",
            "tcp",
            5.0,
            "u",
        )

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"sip_transport": "udp"}, "phones.sip_transport: must be 'tls' or 'tcp'"),
            ({"listne": "x"}, "phones.listne: unknown setting"),
            ({"miss_limit": "20"}, "phones.miss_limit"),
            ({"miss_limit": True}, "phones.miss_limit"),
            ({"miss_window": 0}, "phones.miss_window"),
            ({"listen": "127.0.0.1"}, "phones.listen"),
            ({"listen": "127.0.0.1:70000"}, "phones.listen"),
            ({"templates": 3}, "phones.templates: must be a string"),
            ({"tls_cert": "/c.pem"}, "phones.tls_cert"),
            ({"password": "p"}, "phones.password"),
        ],
    )
    def test_rejects_and_names_the_key(self, data, message):
        """Unknown keys, wrong types and bad values raise ValueError naming the key."""
        with pytest.raises(ValueError, match="^" + message.replace("[", r"\[")):
            PhonesSettings.from_mapping(data)


class TestHardeningSettings:
    def test_defaults(self):
        """Throttling budget, User-Agent policy and proxies have safe defaults."""
        s = PhonesSettings.from_mapping({})
        assert s.prefix_miss_limit == 100 and s.global_miss_burst == 400
        assert s.global_miss_rate == 20.0
        assert s.anonymous_vendors == ("poly", "gigaset") and s.trusted_proxies == ()

    def test_values(self):
        """Lists become tuples; the rate accepts integers."""
        s = PhonesSettings.from_mapping(
            {
                "anonymous_vendors": ["yealink"],
                "trusted_proxies": ["10.0.0.0/8", "::1"],
                "global_miss_rate": 5,
            }
        )
        assert s.anonymous_vendors == ("yealink",) and s.trusted_proxies == ("10.0.0.0/8", "::1")
        assert s.global_miss_rate == 5.0

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"anonymous_vendors": ["cisco"]}, "phones.anonymous_vendors: unknown vendor 'cisco'"),
            ({"anonymous_vendors": "poly"}, "phones.anonymous_vendors: must be a list"),
            ({"trusted_proxies": ["proxy.lan"]}, "phones.trusted_proxies: 'proxy.lan'"),
            ({"trusted_proxies": "10.0.0.1"}, "phones.trusted_proxies: must be a list"),
            ({"global_miss_rate": 0}, "phones.global_miss_rate"),
            ({"global_miss_burst": 0}, "phones.global_miss_burst"),
            ({"prefix_miss_limit": 1.5}, "phones.prefix_miss_limit"),
        ],
    )
    def test_rejects_and_names_the_key(self, data, message):
        """Bad values raise ValueError naming the key."""
        with pytest.raises(ValueError, match="^" + message.replace("[", r"\[")):
            PhonesSettings.from_mapping(data)
