"""Throttling helpers: the token bucket, IPv6 prefixes, X-Forwarded-For, the log limiter."""

from __future__ import annotations

import pytest

from provd.phones.throttle import (
    LogLimiter,
    TokenBucket,
    client_address,
    ipv6_prefix,
    parse_networks,
)

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


class TestTokenBucket:
    def test_burst_then_rate(self):
        """A full bucket allows burst at once, then refills at rate per second, capped."""
        bucket = TokenBucket(rate=2, burst=3, now=0.0)
        assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
        assert bucket.take(0.5) and not bucket.take(0.5)
        assert sum(bucket.take(100.0) for _ in range(10)) == 3


class TestPrefix:
    @pytest.mark.parametrize(
        ("address", "prefix"),
        [
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("::ffff:192.0.2.1", None),
            ("192.0.2.1", None),
            ("garbage", None),
        ],
    )
    def test_prefix(self, address, prefix):
        """IPv6 addresses map to their /64; IPv4 (also v4-mapped) and garbage to None."""
        assert ipv6_prefix(address) == prefix


class TestClientAddress:
    @pytest.mark.parametrize(
        ("peer", "header", "client"),
        [
            ("192.0.2.1", "203.0.113.5", "192.0.2.1"),  # untrusted peer: header ignored
            ("127.0.0.1", "", "127.0.0.1"),  # trusted, no header
            ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
            ("127.0.0.1", "198.51.100.1, 203.0.113.5, 10.1.2.3", "203.0.113.5"),  # rightmost
            ("127.0.0.1", "203.0.113.5:4711", "203.0.113.5"),
            ("::1", "[2001:db8::7]:443", "2001:db8::7"),
            ("127.0.0.1", "evil, 10.1.2.3", "10.1.2.3"),  # garbage ends the walk
            ("127.0.0.1", "10.9.9.9", "10.9.9.9"),  # all trusted: the leftmost
            ("::ffff:127.0.0.1", "203.0.113.5", "203.0.113.5"),  # v4-mapped peer
        ],
    )
    def test_client_address(self, peer, header, client):
        """The first untrusted address from the right, only behind a trusted proxy."""
        assert client_address(peer, header, PROXIES) == client

    def test_no_proxies_configured(self):
        """Without trusted proxies the header never counts."""
        assert client_address("127.0.0.1", "203.0.113.5", ()) == "127.0.0.1"


class TestLogLimiter:
    def test_once_per_interval_with_count(self):
        """One line per key per interval; the next says how many were held back."""
        limiter = LogLimiter(interval=60)
        assert limiter.allow("k", 0.0) == 0
        assert [limiter.allow("k", t) for t in (1.0, 2.0, 3.0)] == [None] * 3
        assert limiter.allow("other", 3.0) == 0
        assert limiter.allow("k", 61.0) == 3
