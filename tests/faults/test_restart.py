"""Issue 14, the restart path: what a restarted daemon does before its first phone is back.

The command's own module only is imported; phones are loaded a page at a time and the
first page's actors start before the rest is read; each phone's newest fetch comes from
one query per page, not one read per actor; online flags are written in batches and are
still right after a crash (every start marks all phones offline first).
"""

import subprocess
import sys

import attrs
import pytest
import trio
from structlog.testing import capture_logs

from provd.actors import daemon as daemon_module
from provd.actors import phone as phone_module
from provd.actors import supervisor as supervisor_module
from provd.actors.admin import ObservedDirectory
from provd.actors.daemon import Daemon
from provd.cli.main import command_of
from provd.phones.fetch import FetchRecord
from provd.store import actor as actor_module
from provd.store.actor import Store
from provd.store.database import Database
from provd.store.records import PhoneRecord
from tests.actors.conftest import make_config

MACS = [f"0004f2{i:06x}" for i in range(7)]


def seed(path, macs=MACS, *, online=False):
    """Provisioned phones (one with two fetches, one pending), as a crashed daemon left them."""
    db = Database(str(path))
    for i, mac in enumerate(macs):
        db.upsert_phone(
            mac=mac, code=f"{i:012d}", hwid=mac, usename=f"u{i}", cn=f"U {i}",
            password=f"pw-{i}-secret", domain="example.com", dns="pbx.example.com",
        )  # fmt: skip
        if i != 3:  # the fourth stays pending (no password yet): it gets an actor too
            db.set_sysclient_password(mac, f"{i:032d}")
            db.put_config_item(mac, "NTP", {"type": "NTP", "tz": f"tz{i}"})
            db.set_state(mac, "provisioned")
        if online:
            db.set_online(mac, True)
    fetch = dict(address="127.0.0.1", user_agent="Poly", vendor="poly", file="f.cfg")
    db.record_fetches(
        [
            FetchRecord(time=100.0, model="VVX 400", firmware="1.0", mac=MACS[5], **fetch),
            FetchRecord(time=200.0, model="VVX 400", firmware="2.0", mac=MACS[5], **fetch),
            FetchRecord(time=150.0, model="VVX 300", firmware="9.0", mac=MACS[1], **fetch),
        ]
    )
    db.close()


# --- the command line ------------------------------------------------------------------------


def test_command_of_finds_the_command_past_the_options():
    assert command_of(["--config", "run", "run", "--log-level", "debug"]) == "run"
    assert command_of(["--config=x.toml", "check-config"]) == "check_config"
    assert command_of(["-h"]) is None and command_of(["bogus"]) is None and command_of([]) is None


def test_provd_run_imports_neither_the_simulator_nor_the_other_commands(tmp_path):
    """Issue 14: ``provd run`` imported every command's module (the simulator with its
    HTTP server, the demo, ...) before the daemon started."""
    code = (
        "import sys\nfrom provd.cli.main import main\n"
        f"status = main(['run', '--config', {str(tmp_path / 'none.toml')!r}])\n"
        "print(status, sorted(m for m in sys.modules if m.startswith(('provd.sim', "
        "'provd.cli.demo', 'provd.cli.phones', 'provd.cli.render'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split(None, 1) == ["2", "[]\n"], done  # config refused, nothing else


# --- the store -------------------------------------------------------------------------------


def test_phones_in_pages_are_the_phones(tmp_path):
    seed(tmp_path / "p.db")
    db = Database(str(tmp_path / "p.db"))
    pages, after = [], ""
    while page := db.phones(after, 3):
        pages.append(page)
        after = page[-1].mac
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r for p in pages for r in p] == db.phones()
    assert pages[0][1].config == {"NTP": {"type": "NTP", "tz": "tz1"}}


def test_last_fetches_one_query_newest_each(tmp_path, monkeypatch):
    """Issue 14: each phone's newest fetch, for a span of MACs, in one query (a restart
    read them one per actor)."""
    seed(tmp_path / "p.db")
    db = Database(str(tmp_path / "p.db"))
    queries = []
    query = db.db.query
    monkeypatch.setattr(db.db, "query", lambda *a, **k: queries.append(a) or query(*a, **k))
    last = db.last_fetches(MACS[0], MACS[6])
    assert len(queries) == 1
    assert sorted(last) == [MACS[1], MACS[5]]
    assert (last[MACS[5]].firmware, last[MACS[1]].model) == ("2.0", "VVX 300")
    assert db.last_fetches(MACS[2], MACS[4]) == {}


async def test_online_flags_are_batched_and_written_at_close(tmp_path, autojump_clock):
    """Issue 14: a restart's thousands of online flags were one commit each; now the flags
    set within ONLINE_DELAY share one, and those pending at close are still written."""
    seed(tmp_path / "p.db")
    store = Store(str(tmp_path / "p.db"))
    batches = []
    write = actor_module._write_online
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            actor_module, "_write_online", lambda f, db: batches.append(dict(f)) or write(f, db)
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            store.set_online(MACS[0], True)  # nothing written for a while: at once
            await trio.sleep(1)
            for mac in MACS[1:]:
                store.set_online(mac, True)
            store.set_online(MACS[2], False)  # the last word counts
            await trio.sleep(1)
            store.set_online(MACS[6], False)
            store.set_online(MACS[6], True)
            store.close()
    assert batches[0] == {MACS[0]: True}
    assert len(batches[1]) == 6 and batches[1][MACS[2]] is False
    assert batches[2] == {MACS[6]: True}  # pending at close: written by the drain
    db = Database(str(tmp_path / "p.db"))
    assert {r.mac for r in db.phones() if r.online} == set(MACS) - {MACS[2]}


async def test_a_refused_online_write_is_tried_again(tmp_path, autojump_clock, nursery):
    seed(tmp_path / "p.db")
    store = Store(str(tmp_path / "p.db"))
    await nursery.start(store.run)
    # Every call quick (on the loop): a call on the store's thread lets the autojump clock
    # move meanwhile, and a retry could then fall on the very instant the test wakes up.
    await store.call(
        lambda db: db.db.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE OF online ON phones"
            " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
        ),
        quick=True,
    )
    with capture_logs() as events:
        store.set_online(MACS[0], True)
        await trio.sleep(actor_module.ONLINE_RETRY * 2.5)
    refused = [e for e in events if e["event"] == "store.operation_failed"]
    assert len(refused) == 3 and "disk trouble" in refused[0]["error"]  # once per retry
    assert not (await store.call(lambda db: db.phone(MACS[0]), quick=True)).online
    await store.call(lambda db: db.db.execute("DROP TRIGGER refuse"), quick=True)
    with capture_logs() as events:
        await trio.sleep(actor_module.ONLINE_RETRY)
    assert (await store.call(lambda db: db.phone(MACS[0]), quick=True)).online
    assert [e["event"] for e in events] == ["store.online_flags_written"]


# --- the daemon's start ----------------------------------------------------------------------


async def test_first_actors_start_before_the_rest_is_loaded(tmp_path, monkeypatch, nursery):
    """Issue 14: the first phone waited for all 10,000 phones to load and get actors. Now
    the first page's actors run while the next pages load; every phone gets its actor and
    its newest fetch from the page's one query (no read per actor); the online flags a
    crash left are cleared before any phone connects, beyond the first page too."""
    seed(tmp_path / "provd.db", online=True)
    monkeypatch.setattr(daemon_module, "FIRST_PAGE", 2)
    monkeypatch.setattr(daemon_module, "PAGE", 2)
    seen = {}
    reads = []

    async def actor(mac, ctx):
        seen[mac] = (len(ctx.directory), any(r.online for r in ctx.directory.all()))
        seen[mac] += (await phone_module._last_fetch(ctx, mac),)
        await trio.sleep_forever()

    monkeypatch.setattr(supervisor_module, "run_phone", actor)
    monkeypatch.setattr(Database, "fetches", lambda db, mac, n=20: reads.append(mac) or [])
    d = Daemon(make_config(tmp_path))
    await nursery.start(d.run)
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(seen) == MACS and d.supervisor.running == 7
    assert seen[MACS[0]][0] == 2 < len(d.directory) == 7  # before page 2 was in
    assert not any(online for _, online, _ in seen.values())
    assert seen[MACS[5]][2].firmware == "2.0" and seen[MACS[0]][2] is None
    assert reads == [] and d.phones_ctx.last_fetches == {}  # taken by the first identify
    assert MACS[6] in d.registration.book.phones  # lifecycles of every page
    d.shutdown()


async def test_a_fetch_since_the_start_is_read_from_the_store(tmp_path, monkeypatch, nursery):
    """The start's newest fetch is dropped once the phone fetched again (recorded)."""
    seed(tmp_path / "provd.db")

    async def actor(mac, ctx):
        await trio.sleep_forever()

    monkeypatch.setattr(supervisor_module, "run_phone", actor)
    d = Daemon(make_config(tmp_path))
    await nursery.start(d.run)
    assert d.phones_ctx.last_fetches[MACS[1]].model == "VVX 300"
    fetch = FetchRecord(
        time=300.0, model="VVX 500", firmware="3.0", mac=MACS[1], address="127.0.0.1",
        user_agent="Poly", vendor="poly", file="f.cfg",
    )  # fmt: skip
    await d._write_fetches([fetch])
    assert MACS[1] not in d.phones_ctx.last_fetches
    assert (await phone_module._last_fetch(d.phones_ctx, MACS[1])).model == "VVX 500"
    d.shutdown()


def test_a_record_read_back_from_the_store_keeps_the_online_flag():
    """The store's online flag lags (batched): a record the actor re-reads after a write
    (a password, an item) must not take a connected phone offline in memory (metrics,
    status, the admin App)."""
    directory = ObservedDirectory()
    heard = []
    directory.listeners.append(lambda mac, record: heard.append(record.online))
    stored = PhoneRecord(mac=MACS[0], code="1", sysclient_password="p")
    directory.put(stored)
    directory.set_online(MACS[0], True)
    directory.put(attrs.evolve(stored, revision=2))  # as read back, online still 0
    assert directory.get(MACS[0]).online and directory.get(MACS[0]).revision == 2
    directory.set_online(MACS[0], False)
    assert not directory.get(MACS[0]).online
    assert heard == [False, True, True, False]
