"""Miss throttling for the phones server, and who the client really is.

Theory of operation. A *miss* is a request provd refuses: an unknown MAC (404), a path it
doesn't serve (404), a MAC or User-Agent check that fails (403), wrong credentials (401).
Throttling only ever changes the answer to a miss (429 instead of 404/403/401); a request
for a known MAC that passes the identity checks, and a model-common file, are always served.
Phones are noisy (a Poly boot asks for ~8 files that don't exist, phones.md "Boots are
noisy") and many share one address behind NAT or a reverse proxy, so a throttle that
refused hits would lock real phones out. (The server doesn't even count a 404 for a file
named after a known phone's MAC as a miss: that is boot noise.)

Misses are counted three ways, each with its own limit:

- per client address, ``miss_limit`` per ``miss_window`` (sliding window);
- per IPv6 /64, ``prefix_miss_limit`` per window: one host may own a whole /64, so a
  scanner hopping through it is still one client;
- globally, a token bucket (``global_miss_burst`` tokens, refilled at ``global_miss_rate``
  per second) against a scanner rotating its source address. It never refuses a hit.

A miss answered 429 is not counted again, so a client behind a shared NAT recovers on its
own once its misses age out. Memory is bounded: at most ``MAX_TRACKED`` addresses and as
many prefixes (least recently missing evicted first).

What this cannot do: someone who knows a provisioned MAC and forges the matching
User-Agent is indistinguishable from the phone. Against that, use ``phones.username`` /
``password`` and HTTPS.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable
from typing import Any

from provd.phones.settings import PhonesSettings

MAX_TRACKED = 10_000

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class MissTracker:
    """Sliding-window miss counts per key (address or prefix), bounded in memory.

    Args:
        limit: misses allowed in ``window``; from then on :meth:`throttled` is True.
        window: window length in seconds.
        max_tracked: most keys remembered.
    """

    def __init__(self, limit: int, window: float, max_tracked: int = MAX_TRACKED) -> None:
        self.limit = limit
        self.window = window
        self.max_tracked = max_tracked
        self._misses: OrderedDict[str, deque[float]] = OrderedDict()
        self._logged: dict[str, float] = {}

    def _prune(self, address: str, now: float) -> deque[float] | None:
        misses = self._misses.get(address)
        if misses is None:
            return None
        while misses and (misses[0] <= now - self.window or len(misses) > self.limit):
            misses.popleft()
        if not misses:
            del self._misses[address]
            self._logged.pop(address, None)
            return None
        return misses

    def throttled(self, address: str, now: float) -> bool:
        """Whether ``address`` has used up its misses for the current window."""
        misses = self._prune(address, now)
        return misses is not None and len(misses) >= self.limit

    def count(self, address: str) -> int:
        """Misses currently remembered for ``address`` (as of the last prune)."""
        misses = self._misses.get(address)
        return len(misses) if misses else 0

    def miss(self, address: str, now: float) -> None:
        """Record a miss by ``address`` at ``now``."""
        misses = self._prune(address, now)
        if misses is None:
            misses = self._misses[address] = deque()
        misses.append(now)
        while len(misses) > self.limit:
            misses.popleft()
        self._misses.move_to_end(address)
        while len(self._misses) > self.max_tracked:
            evicted, _ = self._misses.popitem(last=False)
            self._logged.pop(evicted, None)

    def should_log(self, address: str, now: float) -> bool:
        """True once per window per throttled address: log throttling without flooding."""
        last = self._logged.get(address)
        if last is not None and now - last < self.window:
            return False
        self._logged[address] = now
        return True

    def __len__(self) -> int:
        return len(self._misses)


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; :meth:`take` spends one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(float(self.burst), self.tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self, now: float) -> bool:
        """Spend a token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def empty(self, now: float) -> bool:
        self._refill(now)
        return self.tokens < 1.0


class Throttle:
    """Decides, for each miss, whether it is answered honestly or with 429.

    Args:
        settings: the ``[phones]`` settings (limits and window); see :meth:`configure`.
        now: the clock's current value, to start the global bucket full.
    """

    def __init__(self, settings: PhonesSettings, now: float) -> None:
        self.addresses = MissTracker(settings.miss_limit, settings.miss_window)
        self.prefixes = MissTracker(settings.prefix_miss_limit, settings.miss_window)
        self.bucket = TokenBucket(settings.global_miss_rate, settings.global_miss_burst, now)
        self._global_logged: float | None = None
        self._global_refused = 0
        self.window = settings.miss_window

    def configure(self, settings: PhonesSettings) -> None:
        """Apply reloaded limits; counts so far are kept."""
        self.addresses.limit = settings.miss_limit
        self.prefixes.limit = settings.prefix_miss_limit
        self.addresses.window = self.prefixes.window = self.window = settings.miss_window
        self.bucket.rate = settings.global_miss_rate
        self.bucket.burst = settings.global_miss_burst
        self.bucket.tokens = min(self.bucket.tokens, float(settings.global_miss_burst))

    def miss(self, address: str, now: float) -> tuple[str, dict[str, Any]] | None:
        """Count a miss by ``address``.

        Returns:
            None when the miss is answered as usual; else ``(scope, log fields)`` when it
            is to be answered 429: scope ``"address"``, ``"prefix"`` or ``"global"``; the
            fields are for a log line, empty when one was logged recently for the scope.
        """
        prefix = ipv6_prefix(address)
        if self.addresses.throttled(address, now):
            return "address", self._fields(self.addresses, address, now, address=address)
        if prefix is not None and self.prefixes.throttled(prefix, now):
            return "prefix", self._fields(
                self.prefixes, prefix, now, address=address, prefix=prefix
            )
        if not self.bucket.take(now):
            self._global_refused += 1
            if self._global_logged is not None and now - self._global_logged < self.window:
                return "global", {}
            self._global_logged = now
            fields = {"address": address, "refused": self._global_refused}
            self._global_refused = 0
            return "global", fields
        self.addresses.miss(address, now)
        if prefix is not None:
            self.prefixes.miss(prefix, now)
        return None

    def _fields(self, tracker: MissTracker, key: str, now: float, **extra: str) -> dict[str, Any]:
        if not tracker.should_log(key, now):
            return {}
        return {**extra, "misses": tracker.count(key)}


def ipv6_prefix(address: str) -> str | None:
    """The /64 of an IPv6 address (``"2001:db8:1:2::/64"``), None for IPv4 or garbage."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return None


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``trusted_proxies`` entries as networks (validated by the settings already)."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: Any, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in proxies)


def client_address(peer: str, forwarded_for: str, proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address: ``peer``, or from ``X-Forwarded-For`` when ``peer`` is trusted.

    The header is read right to left (each proxy appends the address it saw): the first
    address that is not a trusted proxy is the client. A malformed entry ends the walk at
    the last trusted hop, so a client can't inject an address of its choosing.
    """
    ip = _ip(peer)
    if ip is None:
        return peer
    if not proxies or not forwarded_for or not _trusted(ip, proxies):
        return str(ip)
    for hop in reversed(forwarded_for.split(",")):
        hop_ip = _ip(hop)
        if hop_ip is None:
            return str(ip)
        ip = hop_ip
        if not _trusted(ip, proxies):
            return str(ip)
    return str(ip)


class LogLimiter:
    """At most one log line per key per ``interval``, counting what it held back.

    Args:
        interval: seconds between two lines for one key.
        max_keys: most keys remembered (oldest forgotten first).
    """

    def __init__(self, interval: float = 60.0, max_keys: int = 1000) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._keys: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def allow(self, key: Hashable, now: float) -> int | None:
        """None to stay quiet; else the number of lines suppressed since the last one."""
        last = self._keys.get(key)
        if last is not None and now - last[0] < self.interval:
            self._keys[key] = (last[0], last[1] + 1)
            return None
        self._keys[key] = (now, 0)
        self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return last[1] if last is not None else 0
