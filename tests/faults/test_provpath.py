"""Issue 14, provisioning path: each write of a first registration and its re-read are one
store call, and the records a first registration does not serve yet are not copied into
the directory step by step, while the directory still holds each credential when it
matters (the phone actor's handlers with the network taken out)."""

import trio

from provd.actors.phone import (
    _on_admin_password,
    _on_password,
    _on_settled,
)
from provd.actors.state import PhoneDirectory
from provd.config import Config
from provd.protocol.sysclient import AdminPasswordReceived, PasswordAssigned, Settled
from provd.store.actor import Store

from ..phonelink import first_registration_link

MAC = "001565000071"
FIELDS = dict(hwid="", usename="u", cn="U", password="Sip-Pw-1", domain="d", dns="")


class CountingDirectory(PhoneDirectory):
    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, record) -> None:
        self.puts += 1
        super().put(record)


async def _first_registration(tmp_path, nursery):
    store = Store(str(tmp_path / "provd.db"))
    await nursery.start(store.run)
    directory = CountingDirectory()
    record, _ = await store.call(lambda db: db.upsert_phone(mac=MAC, code="1", **FIELDS))
    directory.put(record)
    directory.puts = 0
    link = first_registration_link(
        store, directory, MAC, Config.from_mapping({"appservice": {"password": "x" * 12}})
    )
    return store, directory, link


def _counting_calls(store: Store) -> list[int]:
    calls = [0]
    real_call = store.call

    async def counting(fn, **kwargs):
        calls[0] += 1
        return await real_call(fn, **kwargs)

    store.call = counting
    return calls


async def test_password_is_written_and_read_back_in_one_store_call(tmp_path, nursery):
    """The password Devices assigned for the code and the record re-read after it: one
    store call (before: two), and the directory holds the new password with the code
    answered at once, so a connection lost before the settle reconnects without code."""
    store, directory, link = await _first_registration(tmp_path, nursery)
    calls = _counting_calls(store)
    with trio.fail_after(10):
        await _on_password(PasswordAssigned(password="p" * 32, with_code=True), link)
    assert calls[0] == 1
    current = directory.get(MAC)
    assert current.sysclient_password == "p" * 32
    assert not current.code_pending  # the next connection identifies without the code
    assert link.attempt.code_done
    store.close()


async def test_admin_password_before_settle_is_taken_in_by_the_settle(tmp_path, nursery):
    """A first registration's administrative password is written without a re-read (the
    record is not served before it settles; before: a re-read and a directory copy);
    the settle's one store call (state and re-read) brings it into the directory. Once
    settled, a new administrative password reaches the directory at once."""
    store, directory, link = await _first_registration(tmp_path, nursery)
    with trio.fail_after(10):
        await _on_password(PasswordAssigned(password="p" * 32, with_code=True), link)
        directory.puts = 0
        calls = _counting_calls(store)
        await _on_admin_password(AdminPasswordReceived(password="Admin-1"), link)
        assert (calls[0], directory.puts) == (1, 0)
        assert directory.data(MAC) is None  # not served yet
        stored = await store.call(lambda db: db.phone(MAC))
        assert stored.admin_password == "Admin-1"  # written all the same

        await _on_settled(Settled(by_quiet=False), link)
        assert (calls[0], directory.puts) == (3, 1)  # the admin write; the settle's one call
        current = directory.get(MAC)
        assert current.state == "provisioned" and current.admin_password == "Admin-1"

        await _on_admin_password(AdminPasswordReceived(password="Admin-2"), link)
        assert directory.get(MAC).admin_password == "Admin-2"  # a live change: at once
        assert directory.puts == 2
    store.close()
