"""Applying configuration items through the phone actor's handler and the real store: the
cost per item must not grow with the number of items the phone already has (issue 8.14)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import trio

from provd.actors.phone import PhoneContext, _Link, _on_config
from provd.actors.state import DevicesLocator, HandshakeLimiter, Outcomes, PhoneDirectory
from provd.config import Config
from provd.protocol.sysclient import ConfigItem, ConfigReceived
from provd.protocol.tunnel import TunnelEndpoint
from provd.store.actor import Store
from provd.store.database import Database

MAC = "805ec0000001"


async def _run(items: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "provd.db")
        db = Database(path)
        db.upsert_phone(
            mac=MAC, code="1", hwid=MAC, usename="u", cn="c", password="p", domain="d", dns=""
        )
        db.close()
        store = Store(path)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            record = await store.call(lambda d: d.phone(MAC))
            assert record is not None
            directory = PhoneDirectory()
            directory.put(record)
            ctx = PhoneContext(
                config=Config.from_mapping({"appservice": {"password": "bench-password-12"}}),
                store=store,
                directory=directory,
                locator=DevicesLocator(),
                outcomes=Outcomes(),
                handshakes=HandshakeLimiter(1),
            )
            link = _Link(record, ctx, TunnelEndpoint(lambda _r: b""))
            start = time.perf_counter()
            for i in range(items):
                item = ConfigItem(type=f"ITEM{i}", item={"type": f"ITEM{i}", "n": i})
                await _on_config(ConfigReceived(item), link)
            elapsed = time.perf_counter() - start
            store.close()
            nursery.cancel_scope.cancel()
    return elapsed


def run(items: int = 5000) -> list[tuple[str, ...]]:
    small = max(1, items // 10)
    small_rate = small / trio.run(_run, small)
    elapsed = trio.run(_run, items)
    rate = items / elapsed
    return [
        (
            f"apply {items:,} config items to one phone (actor + store)",
            f"{rate:,.0f} /s",
            f"{elapsed:.1f} s; {small_rate:,.0f} /s at {small:,} items",
            f">= {1 / 1.25:.2f}x the rate at {small:,}",
            "PASS" if rate >= small_rate / 1.25 else "FAIL",
        )
    ]
