"""Digests, session keys and RC4 as innovaphone defines them (spec sections 2, 3 and 6).

Everything is a pure function over strings. RC4 comes from pycryptodome: the keys here are
50 to 90 bytes long, which ``cryptography``'s ARC4 refuses (it accepts at most 32).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from Crypto.Cipher import ARC4

from . import jsonwire
from .errors import ProtocolError

#: Cap on an encrypted value, in hex characters (a password, not a payload).
MAX_CIPHERTEXT_HEX = 4096

#: RC4 key lengths pycryptodome's ARC4 accepts, in bytes. A key is ``seed:password``; a
#: peer controls the seed (0x0003 ``seed``, MEDIA ``turnSeed``), so a long one must be a
#: ProtocolError, not a ValueError from the cipher.
MIN_RC4_KEY = 5
MAX_RC4_KEY = 256


def _utf8(text: str, what: str) -> bytes:
    """UTF-8 bytes of peer-given text; a lone surrogate (from a JSON escape) is refused."""
    try:
        return text.encode("utf-8")
    except (UnicodeEncodeError, AttributeError):
        raise ProtocolError(f"{what} is not valid Unicode text") from None


def sha256_hex(text: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of ``text``.

    Raises:
        ProtocolError: ``text`` cannot be UTF-8 encoded (a lone surrogate).
    """
    return hashlib.sha256(_utf8(text, "hashed value")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    """Compare two digests in constant time (case-insensitive hex)."""
    return hmac.compare_digest(
        a.lower().encode("ascii", "replace"), b.lower().encode("ascii", "replace")
    )


def new_challenge(length: int = 16) -> str:
    """A fresh login challenge from the OS CSPRNG; innovaphone uses digits."""
    return "".join(secrets.choice("0123456789") for _ in range(length))


def login_digest(
    *,
    app: str,
    domain: str,
    sip: str,
    guid: str,
    dn: str,
    info: dict[str, Any] | None,
    challenge: str,
    password: str,
) -> str:
    """The AppLogin digest.

    ``sha256(app:domain:sip:guid:dn:info:challenge:password)`` with ``info`` compact JSON in
    received key order; without an ``info`` member its part is left out entirely.
    """
    parts = [app, domain, sip, guid, dn]
    if info is not None:
        parts.append(jsonwire.dumps(info))
    parts += [challenge, password]
    return sha256_hex(":".join(parts))


def session_key(challenge: str, password: str) -> str:
    """The per-connection session key: ``sha256(innovaphoneAppSessionKey:challenge:password)``."""
    return sha256_hex(f"innovaphoneAppSessionKey:{challenge}:{password}")


def rc4(key: str, data: bytes) -> bytes:
    """RC4 keyed with the UTF-8 bytes of ``key`` (symmetric: encrypts and decrypts).

    Raises:
        ProtocolError: a key shorter than 5 or longer than 256 bytes (a peer's overlong
            seed), or not valid Unicode.
    """
    raw = _utf8(key, "RC4 key")
    if not MIN_RC4_KEY <= len(raw) <= MAX_RC4_KEY:
        raise ProtocolError(
            f"RC4 key of {len(raw)} bytes (seed too long or too short?); "
            f"{MIN_RC4_KEY}..{MAX_RC4_KEY} allowed"
        )
    return ARC4.new(raw).encrypt(data)


def rc4_encrypt_hex(key: str, plaintext: str) -> str:
    """RC4-encrypt UTF-8 ``plaintext``; return lowercase hex."""
    return rc4(key, _utf8(plaintext, "plaintext")).hex()


def rc4_decrypt_hex(key: str, ciphertext: str) -> str:
    """Decrypt lowercase/uppercase hex ``ciphertext`` to text.

    Raises:
        ProtocolError: odd length, non-hex, oversized, or a plaintext that is not UTF-8.
    """
    if not isinstance(ciphertext, str):
        raise ProtocolError("ciphertext is not a string")
    if len(ciphertext) > MAX_CIPHERTEXT_HEX:
        raise ProtocolError("ciphertext too long")
    if len(ciphertext) % 2:
        raise ProtocolError("ciphertext has odd length")
    try:
        raw = bytes.fromhex(ciphertext)
    except ValueError:
        raise ProtocolError("ciphertext is not hex") from None
    if not raw:
        return ""
    try:
        return rc4(key, raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("decrypted value is not UTF-8 (wrong key?)") from None


def app_encrypt(seed: str, key: str, plaintext: str) -> str:
    """AppWebsocketEncrypt: RC4 keyed ``seed:key`` (``key`` = a session key), hex out."""
    return rc4_encrypt_hex(f"{seed}:{key}", plaintext)


def app_decrypt(seed: str, key: str, ciphertext: str) -> str:
    """AppWebsocketDecrypt, the inverse of :func:`app_encrypt`."""
    return rc4_decrypt_hex(f"{seed}:{key}", ciphertext)


def app_hash(seed: str, key: str, data: str) -> str:
    """AppWebsocketHash: ``sha256(seed:key:data)``."""
    return sha256_hex(f"{seed}:{key}:{data}")


def sysclient_digest(*, id: str, product: str, version: str, challenge: str, password: str) -> str:
    """The Sysclient challenge answer: ``sha256(id:product:version:challenge:password)``."""
    return sha256_hex(f"{id}:{product}:{version}:{challenge}:{password}")
