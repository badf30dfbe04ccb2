"""Every test vector of spec section 2, 3 and 6, reproduced."""

import json

import pytest

from provd.protocol import ProtocolError, crypto

CHALLENGE = "0123456789abcdef"


class TestLoginDigest:
    @pytest.mark.parametrize(
        ("fields", "info", "digest"),
        [
            (
                ("pbxadminapi", "", "", "", ""),
                None,
                "a205299ed2ef2786c311e0be1b14db343f2cadd906a6ae7b564eee34bda5e9a1",
            ),
            (
                ("pbxadminapi", "", "", "", ""),
                {},
                "57b23fe824b9222a7ac879597cb509bcdc865a1bfeb057d9d12118cef0c3ba34",
            ),
            (
                ("pbxadminapi", "", "", "", ""),
                {"cn": "Test User"},
                "96db3c3f657230c2b68194becc6d2a77f05de9f79f01fc81e9ca0fb196b10d9d",
            ),
            (
                (
                    "innovaphone-users",
                    "example.com",
                    "administrator",
                    "0123456789abcdef0123456789abcdef",
                    "Administrator User",
                ),
                json.loads(
                    '{"appobj":"users","apps":[{"name":"users"},{"name":"profile"}],'
                    '"appurl":"https://1.2.3.4/example.com/usersapp/innovaphone-users",'
                    '"unlicensed":true}'
                ),
                "ef1b811ffaa8f9255c39c653d8fb26b4687b2d8c4d9ac91b4821bff6bae3ff44",
            ),
        ],
    )
    def test_spec_vectors(self, fields, info, digest):
        """The spec's digests come out of login_digest, with and without info."""
        app, domain, sip, guid, dn = fields
        got = crypto.login_digest(
            app=app,
            domain=domain,
            sip=sip,
            guid=guid,
            dn=dn,
            info=info,
            challenge=CHALLENGE,
            password="pwd",
        )
        assert got == digest

    def test_info_keeps_received_key_order(self):
        """Reordering info keys changes the digest: the order received is hashed."""
        a = crypto.login_digest(
            app="a",
            domain="",
            sip="",
            guid="",
            dn="",
            info={"x": 1, "y": 2},
            challenge="1",
            password="p",
        )
        b = crypto.login_digest(
            app="a",
            domain="",
            sip="",
            guid="",
            dn="",
            info={"y": 2, "x": 1},
            challenge="1",
            password="p",
        )
        assert a != b

    def test_info_not_ascii_or_slash_escaped(self):
        """Non-ASCII and '/' go into the hashed string unescaped."""
        info = {"cn": "Jörg", "url": "https://x/y"}
        expected = crypto.sha256_hex('a:::::{"cn":"Jörg","url":"https://x/y"}:c:p')
        got = crypto.login_digest(
            app="a", domain="", sip="", guid="", dn="", info=info, challenge="c", password="p"
        )
        assert got == expected


def test_session_key_vector():
    """Session key for challenge 0123456789abcdef and password pwd matches the spec."""
    assert crypto.session_key(CHALLENGE, "pwd") == (
        "d58c77eae0c1c1f37a9f545e207643c926ad9ea4932016a83a4a01029de37760"
    )


SESSION_KEY = "d58c77eae0c1c1f37a9f545e207643c926ad9ea4932016a83a4a01029de37760"
SEED = "10046478319880090512700"


class TestAppEncryption:
    def test_encrypt_vector(self):
        """S3cret-Päss encrypts to the spec's hex under the spec's seed and key."""
        assert crypto.app_encrypt(SEED, SESSION_KEY, "S3cret-Päss") == "31023a66e5098196e49e7081"

    def test_decrypt_vector(self):
        """And decrypts back."""
        assert crypto.app_decrypt(SEED, SESSION_KEY, "31023a66e5098196e49e7081") == "S3cret-Päss"

    def test_independent_rc4_vector(self):
        """The independent RC4 check from the spec decrypts to its plaintext."""
        key = "innovaphoneAppClient:usr:5bba709c4b68374d:ip411"
        data = bytes.fromhex("568665fc2f134d3133325b1f30d66e4e6c9f6f9d165e2f5ce7bbfff1b1de68da")
        assert crypto.rc4(key, data) == b"9ae4b9193f1362019e19009033400109"

    def test_uppercase_hex_accepted(self):
        """Hex case does not matter on input."""
        assert crypto.app_decrypt(SEED, SESSION_KEY, "31023A66E5098196E49E7081") == "S3cret-Päss"

    @pytest.mark.parametrize(
        ("ciphertext", "reason"),
        [("abc", "odd length"), ("zz", "not hex"), ("0" * 5000, "too long")],
    )
    def test_bad_ciphertext(self, ciphertext, reason):
        """Odd-length, non-hex and oversized ciphertext raise ProtocolError with a reason."""
        with pytest.raises(ProtocolError, match=reason):
            crypto.app_decrypt(SEED, SESSION_KEY, ciphertext)

    def test_wrong_key_non_utf8(self):
        """A plaintext that isn't UTF-8 (wrong key) is a ProtocolError, not a crash."""
        ct = crypto.rc4_encrypt_hex("right", "x")
        bad = crypto.rc4("right", b"\xff\xfe").hex()
        assert crypto.rc4_decrypt_hex("right", ct) == "x"
        with pytest.raises(ProtocolError):
            crypto.rc4_decrypt_hex("right", bad)


def test_app_hash():
    """Hash is sha256 of seed:key:data."""
    assert crypto.app_hash("s", "k", "d") == crypto.sha256_hex("s:k:d")


class TestSysclientCrypto:
    def test_challenge_digest_vector(self):
        """The spec's sysclient challenge digest vector."""
        got = crypto.sysclient_digest(
            id="112233445566",
            product="provd",
            version="1",
            challenge="4711",
            password="0123456789abcdef0123456789abcdef",
        )
        assert got == "bf1bc2dfefba4c219c557412a1dc9ab4fa19b0af86cd608e8c240a9a73b030c8"

    def test_admin_password_vector(self):
        """admin-Pwd-42 under seed fedcba9876543210 encrypts to the spec's hex."""
        key = "fedcba9876543210:0123456789abcdef0123456789abcdef"
        assert crypto.rc4_encrypt_hex(key, "admin-Pwd-42") == "fa071eda236ae7b6791d053d"


def test_challenges_are_digits_and_fresh():
    """Challenges are 16 digits and differ between calls."""
    a, b = crypto.new_challenge(), crypto.new_challenge()
    assert a.isdigit() and len(a) == 16 and a != b


def test_digests_equal_ignores_case_only():
    """Digest comparison is case-insensitive but exact otherwise."""
    assert crypto.digests_equal("ABcd", "abCD")
    assert not crypto.digests_equal("abcd", "abce")
    assert not crypto.digests_equal("abcd", "Ω")
