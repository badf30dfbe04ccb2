"""Issue 14: what provisioning one phone costs must not grow with the phones stored.

The store's per-phone work on the provisioning path, and the log lines a first
registration writes, checked without a running daemon where possible.
"""

from provd.store.database import Database
from provd.store.records import Lifecycle

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
