"""In-process micro benchmarks: codecs, digests, rendering (cold and cached)."""

from __future__ import annotations

import time

from provd.actors.state import phone_data
from provd.phones import Renderer, identify
from provd.protocol import crypto
from provd.protocol.messages import decode_text, encode_text
from provd.protocol.sysclient import AdminFrame, AdminType, decode_frame, encode_frame
from provd.store.records import PhoneRecord

from .common import CONFIG_ITEMS

PROVISIONING_PHONE = (
    '{"mt":"ProvisioningPhone","mac":"112233445566","code":"562822784750",'
    '"hwid":"112233445566","usename":"test_user","cn":"Test User",'
    '"seed1":"10046478319880090512700","password":"ddfc00","domain":"test.com",'
    '"dns":"172.16.0.255","src":"x"}'
)


def _rate(fn, seconds: float = 0.5) -> tuple[float, float]:
    """(operations per second, microseconds per operation)."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            elapsed = now - start
            return n / elapsed, elapsed / n * 1e6


def run() -> list[tuple[str, str, str]]:
    rows = []
    ops, us = _rate(lambda: decode_text(PROVISIONING_PHONE))
    rows.append(("decode ProvisioningPhone", f"{ops:,.0f} /s", f"{us:.1f} µs"))
    msg = decode_text(PROVISIONING_PHONE)
    ops, us = _rate(lambda: encode_text(msg))
    rows.append(("encode ProvisioningPhone", f"{ops:,.0f} /s", f"{us:.1f} µs"))
    frame = encode_frame(
        AdminFrame(AdminType.CONFIG, {"config": CONFIG_ITEMS["NTP"], "last": True})
    )
    ops, us = _rate(lambda: decode_frame(frame))
    rows.append(("decode sysclient config frame", f"{ops:,.0f} /s", f"{us:.1f} µs"))
    key = crypto.session_key("0123456789abcdef", "pwd")
    ops, us = _rate(
        lambda: crypto.app_decrypt("10046478319880090512700", key, "31023a66e5098196e49e7081")
    )
    rows.append(("RC4 password decrypt", f"{ops:,.0f} /s", f"{us:.1f} µs"))

    record = PhoneRecord(
        mac="805ec0000001",
        code="1",
        hwid="805ec0000001",
        usename="u",
        cn="User",
        password="pw",
        domain="example.com",
        dns="pbx.example.com",
        state="provisioned",
        revision=1,
        config=CONFIG_ITEMS,
    )
    phone = phone_data(record)
    ident = identify("/805ec0000001.cfg", "Yealink SIP-T46S 66.86.0.15 80:5e:c0:00:00:01")
    renderer = Renderer()
    cold = []
    for _ in range(50):
        renderer.reload()
        start = time.perf_counter()
        renderer.render(phone, ident)
        cold.append(time.perf_counter() - start)
    cold.sort()
    rows.append(
        ("render Yealink file, cold", f"{1 / cold[25]:,.0f} /s", f"{cold[25] * 1e6:.0f} µs")
    )
    ops, us = _rate(lambda: renderer.render(phone, ident))
    rows.append(("render Yealink file, cached", f"{ops:,.0f} /s", f"{us:.1f} µs"))
    return rows
