"""The phone actor's loop and handlers with the network taken out: back-off resets and
the cost of applying configuration items."""

import trio

from provd.actors import phone as phone_module
from provd.actors.phone import PhoneContext, _Link, _on_config, run_phone
from provd.actors.state import DevicesLocator, HandshakeLimiter, Outcomes, PhoneDirectory
from provd.config import Config
from provd.protocol.sysclient import ConfigItem, ConfigReceived
from provd.protocol.tunnel import TunnelEndpoint
from provd.store.actor import Store
from provd.store.database import Database
from provd.store.records import PhoneRecord

from ..phonelink import first_registration_link

MAC = "001565000061"


def config(**provisioning):
    return Config.from_mapping({"appservice": {"password": "x" * 12}, "provisioning": provisioning})


async def test_backoff_resets_only_after_a_connection_lived(monkeypatch, autojump_clock):
    """Found 8.14: admitted connections that die at once do not reset the back-off; one
    that lived backoff_reset_after seconds does."""
    lives = [0.5, 0.5, 0.5, 0.5, 0.5, 40.0, 0.5]
    delays = []
    done = trio.Event()

    async def fake_attempt(record, url, ctx, use_code, code_refused=False):
        if not lives:
            done.set()
            await trio.sleep_forever()
        return phone_module._Attempt(
            reason="closed", connected=True, admitted=True, lived=lives.pop(0)
        )

    real_next = phone_module.Backoff.next_delay

    def recording_next(self):
        delay = real_next(self)
        delays.append(self.attempt)
        return delay

    monkeypatch.setattr(phone_module, "_attempt", fake_attempt)
    monkeypatch.setattr(phone_module.Backoff, "next_delay", recording_next)
    directory = PhoneDirectory()
    directory.put(PhoneRecord(mac=MAC, code="1", sysclient_password="p" * 32, password_code="1"))
    ctx = PhoneContext(
        config=config(backoff_reset_after=30.0),
        store=None,
        directory=directory,
        locator=DevicesLocator("ws://127.0.0.1:1/devices/"),
        outcomes=Outcomes(),
        handshakes=HandshakeLimiter(1),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_phone, MAC, ctx)
        await done.wait()
        nursery.cancel_scope.cancel()
    # Attempt numbers after each delay: growing, reset once by the long-lived connection.
    assert delays == [1, 2, 3, 4, 5, 1, 2]


async def test_config_items_applied_without_reloading_the_phone(tmp_path, monkeypatch):
    """Found 8.14: each item costs O(1): the record is not reloaded (with all its items)
    from the store per item, which made 5,000 items take 42 s."""
    db = Database(str(tmp_path / "provd.db"))
    db.upsert_phone(
        mac=MAC, code="1", hwid="", usename="u", cn="c", password="p", domain="d", dns=""
    )
    db.close()
    reloads = []
    real_phone = Database.phone
    monkeypatch.setattr(
        Database, "phone", lambda self, mac: reloads.append(mac) or real_phone(self, mac)
    )
    store = Store(str(tmp_path / "provd.db"))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        record = await store.call(lambda d: real_phone(d, MAC))
        directory = PhoneDirectory()
        directory.put(record)
        ctx = PhoneContext(
            config=config(),
            store=store,
            directory=directory,
            locator=DevicesLocator(),
            outcomes=Outcomes(),
            handshakes=HandshakeLimiter(1),
        )
        link = _Link(record, ctx, TunnelEndpoint(lambda r: b""))
        for i in range(300):
            item = ConfigItem(type=f"X{i}", item={"type": f"X{i}", "n": i})
            await _on_config(ConfigReceived(item), link)
        await _on_config(ConfigReceived(None, completes_initial=True), link)
        assert reloads == []
        current = directory.get(MAC)
        assert len(current.config) == 300 and current.config["X7"] == {"type": "X7", "n": 7}
        stored = await store.call(lambda d: real_phone(d, MAC))
        assert (stored.config, stored.revision) == (current.config, current.revision)
        store.close()
        nursery.cancel_scope.cancel()


async def test_settling_keeps_a_new_code_stored_meanwhile(tmp_path):
    """A new ProvisioningPhone (code 2) stored while the old registration (code 1) settles
    must stay in the directory: the settled record is re-read, not an older copy written
    back. Before, the copy taken before the store write overwrote it, the restarted actor
    saw no pending code and never presented code 2 (the provisioning timed out)."""
    from provd.actors.phone import _on_settled
    from provd.protocol.sysclient import Settled

    store = Store(str(tmp_path / "provd.db"))
    directory = PhoneDirectory()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        fields = dict(hwid="", usename="u", cn="U", password="Sip-Pw-1", domain="d", dns="")
        await store.call(lambda db: db.upsert_phone(mac=MAC, code="1", **fields))
        await store.call(lambda db: db.set_sysclient_password(MAC, "p" * 32, "1"))
        directory.put(await store.call(lambda db: db.phone(MAC)))
        link = first_registration_link(store, directory, MAC, config())
        link.attempt.code_done = True
        real_call = store.call

        async def call_with_a_new_code_meanwhile(fn, **kwargs):
            # The settle's write and re-read are one store call (issue 14): the new code
            # lands while it waits its turn, after the actor took its copy of the record.
            if store.call is call_with_a_new_code_meanwhile:  # once: the settle's call
                store.call = real_call
                record, _ = await real_call(lambda db: db.upsert_phone(mac=MAC, code="2", **fields))
                directory.put(record)
            return await real_call(fn, **kwargs)

        store.call = call_with_a_new_code_meanwhile
        await _on_settled(Settled(by_quiet=False), link)
        current = directory.get(MAC)
        assert current.code == "2" and current.code_pending
        store.close()
