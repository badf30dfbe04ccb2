"""Issue 14: what provisioning one phone costs must not grow with the phones stored.

The store's per-phone work on the provisioning path, and the log lines a first
registration writes, checked without a running daemon where possible.
"""

from provd.store.database import Database
from provd.store.records import Lifecycle

from ..phonelink import first_registration_link
from ..store.test_database import add


def test_lifecycle_batches_read_no_whole_table(tmp_path):
    """A batch of lifecycles (the registration checker writes one a second while phones
    are provisioned) costs keyed statements only: before, each batch read every stored
    phone's MAC to skip removed ones (a SCAN of phones, O(store) per batch)."""
    db = Database(str(tmp_path / "p.db"))
    for i in range(20):
        add(db, mac=f"1122334455{i:02x}", code=str(i))
    statements: list[str] = []
    db.db.conn.set_trace_callback(statements.append)
    db.put_lifecycles(
        [
            Lifecycle(mac="112233445501", state="provisioned", since=2.0, provisioned_at=2.0),
            Lifecycle(mac="112233445502", state="fetched", since=3.0, warned=True, error="x"),
            Lifecycle(mac="0000000000ff", state="fetched"),  # removed meanwhile: skipped
        ]
    )
    db.db.conn.set_trace_callback(None)
    lifecycles = db.lifecycles()
    assert set(lifecycles) == {"112233445501", "112233445502"}
    assert lifecycles["112233445502"].warned and lifecycles["112233445502"].error == "x"
    assert lifecycles["112233445501"].provisioned_at == 2.0
    db.put_lifecycles([Lifecycle(mac="112233445502", state="registered", addr="a")])
    again = db.lifecycle("112233445502")
    assert again.state == "registered" and again.addr == "a" and not again.warned
    written = [s for s in statements if s.split()[0].upper() not in ("BEGIN", "COMMIT")]
    assert written
    for sql in written:
        plan = db.db.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        scans = [r[3] for r in plan if r[3].startswith("SCAN") and r[3] != "SCAN CONSTANT ROW"]
        assert not scans, (sql, scans)
    db.close()


async def test_initial_items_are_taken_into_the_directory_once_settled(tmp_path):
    """A first registration's items reach the in-memory record in one re-read when it
    settles, not one copy of the record (secrets re-registered, listeners called) per
    item; the served record then has every item and the stored revision."""
    import trio

    from provd.actors.phone import _on_config, _on_settled
    from provd.actors.state import PhoneDirectory
    from provd.protocol.sysclient import ConfigItem, ConfigReceived, Settled
    from provd.store.actor import Store

    from ..actors.test_phone_actor_loop import MAC, config

    store = Store(str(tmp_path / "provd.db"))
    puts: list[str] = []

    class Counting(PhoneDirectory):
        def put(self, record):
            puts.append(record.mac)
            super().put(record)

    directory = Counting()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        fields = dict(hwid="", usename="u", cn="U", password="Sip-Pw-1", domain="d", dns="")
        await store.call(lambda db: db.upsert_phone(mac=MAC, code="1", **fields))
        await store.call(lambda db: db.set_sysclient_password(MAC, "p" * 32, "1"))
        directory.put(await store.call(lambda db: db.phone(MAC)))
        link = first_registration_link(store, directory, MAC, config())
        link.attempt.code_done = True
        puts.clear()
        for ctype in ("PHONE", "MEDIA", "NTP", "TLS_PROFILE"):
            item = ConfigItem(type=ctype, item={"type": ctype, "x": ctype.lower()})
            await _on_config(ConfigReceived(item), link)
        assert puts == []  # the phone is not served yet: nothing to copy per item
        await _on_settled(Settled(by_quiet=False), link)
        assert puts == [MAC]  # one re-read once it is in
        current = directory.get(MAC)
        stored = await store.call(lambda db: db.phone(MAC))
        assert current.state == "provisioned" and link.initial_items == 4
        assert current.config == stored.config and set(current.config) == {
            "PHONE",
            "MEDIA",
            "NTP",
            "TLS_PROFILE",
        }
        assert current.revision == stored.revision
        assert directory.data(MAC) is not None  # served, with the items
        store.close()
        nursery.cancel_scope.cancel()
