"""The simulator stays cheap per phone as an installation grows (issue 14): lookups the
Users service and the PbxAdminApi make per phone do not scan every object."""

from provd.protocol.messages import GetObject, GetObjectResult, UpdateObject
from provd.sim.config import PbxConfig
from provd.sim.domain import PASSWORD_ALPHABET, random_digits, random_password
from provd.sim.pbxadmin import PbxAdminState, PbxObject


class CountingDict(dict):
    """A dict that counts how often all its values are walked."""

    walks = 0

    def values(self):
        CountingDict.walks += 1
        return super().values()


def test_ensure_user_does_not_scan_every_object():
    """The Users service adds a user per phone: no walk over every object per phone (was
    two scans per phone, quadratic over a 10,000-phone run)."""
    admin = PbxAdminState(PbxConfig())
    for n in range(1000):
        mac = f"0004f2{n:06x}"
        admin.ensure_user(mac=mac, cn=f"user {n}", h323=f"u{n}", hw=mac)
    admin.objects = CountingDict(admin.objects)
    CountingDict.walks = 0
    for n in range(1000, 1100):
        mac = f"0004f2{n:06x}"
        admin.ensure_user(mac=mac, cn=f"user {n}", h323=f"u{n}", hw=mac)
        assert admin.find(cn=f"user {n - 500}").h323 == f"u{n - 500}"
    assert CountingDict.walks <= 1  # at most one index rebuild
    assert len(admin.objects) == 1100


def test_lookups_follow_renames_and_keep_the_first_match():
    admin = PbxAdminState(PbxConfig())
    a = admin.ensure_user(mac="0004f2000001", cn="Ann", h323="ann", hw="0004f2000001")
    b = admin.ensure_user(mac="0004f2000002", cn="Bob", h323="bob", hw="0004f2000002")
    assert admin.find(cn="Ann") is a and admin.find(h323="bob") is b
    # renamed by UpdateObject: found under the new name only
    admin.handle(UpdateObject(guid=a.guid, cn="Anna", h323="anna"))
    assert admin.find(cn="Ann") is None and admin.find(cn="Anna") is a
    (result,) = admin.handle(GetObject(h323="anna"))
    assert isinstance(result, GetObjectResult) and result.guid == a.guid
    # renamed directly (a test, sim ctl): likewise
    b.cn = "Anna"
    assert admin.find(cn="Anna") is a  # the first object with that name, as before
    a.cn = "Ann"
    assert admin.find(cn="Anna") is b
    # objects added or replaced behind the state's back are found too
    c = PbxObject(guid="g-c", cn="Cleo", e164="303")
    admin.objects[c.guid] = c
    assert admin.find(e164="303") is c
    admin.objects[c.guid] = PbxObject(guid="g-c", cn="Cleo2", e164="304")
    assert admin.find(e164="303") is None and admin.find(e164="304").cn == "Cleo2"
    del admin.objects[b.guid]
    assert admin.find(cn="Anna") is None


def test_random_passwords_and_digits_keep_their_shape():
    """The one-call generators give what the per-character ones gave: 32 characters of
    the alphabet (every character reachable), digits of the asked length."""
    seen = set()
    for _ in range(200):
        password = random_password()
        assert len(password) == 32 and set(password) <= set(PASSWORD_ALPHABET)
        seen |= set(password)
    assert seen == set(PASSWORD_ALPHABET)
    assert len(random_password(5)) == 5
    for length in (1, 16, 40):
        digits = random_digits(length)
        assert len(digits) == length and digits.isdigit()
    assert len({random_digits(16) for _ in range(50)}) == 50
