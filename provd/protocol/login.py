"""AppWebsocket login as sans-I/O state machines, for both sides (spec sections 2 and 3).

The server side hands out one CSPRNG challenge per ``AppChallenge`` and accepts exactly one
``AppLogin`` against it; the digest is compared in constant time. The client side logs in
either with a password it knows, or with a ready-made login the PBX computed for it
(``GetServiceLogin``), in which case the session key arrives encrypted under the PBX
connection's own session key.

Neither class does I/O: feed it the decoded message, send what it returns.
"""

from __future__ import annotations

import enum
import secrets
from typing import Any

import attrs

from . import crypto
from .errors import LoginRefused, ProtocolError
from .messages import (
    AppChallenge,
    AppChallengeResult,
    AppCheckLogin,
    AppCheckLoginResult,
    AppLogin,
    AppLoginResult,
    GetServiceLogin,
    GetServiceLoginResult,
)


class LoginState(enum.Enum):
    IDLE = "idle"
    CHALLENGED = "challenged"
    LOGGING_IN = "logging-in"
    LOGGED_IN = "logged-in"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class Identity:
    """Who a login claims to be: every field but ``pbx_obj`` goes into the digest."""

    app: str
    domain: str = ""
    sip: str = ""
    guid: str = ""
    dn: str = ""
    pbx_obj: str | None = None
    info: dict[str, Any] | None = None

    @classmethod
    def of(cls, login: AppLogin | GetServiceLoginResult) -> Identity:
        return cls(
            app=login.app,
            domain=login.domain,
            sip=login.sip,
            guid=login.guid,
            dn=login.dn,
            pbx_obj=login.pbx_obj,
            info=login.info,
        )

    def digest(self, challenge: str, password: str) -> str:
        return crypto.login_digest(
            app=self.app,
            domain=self.domain,
            sip=self.sip,
            guid=self.guid,
            dn=self.dn,
            info=self.info,
            challenge=challenge,
            password=password,
        )

    def login(self, digest: str) -> AppLogin:
        """The ``AppLogin`` message carrying this identity and ``digest``."""
        return AppLogin(
            app=self.app,
            domain=self.domain,
            sip=self.sip,
            guid=self.guid,
            dn=self.dn,
            pbx_obj=self.pbx_obj,
            info=self.info,
            digest=digest,
        )


class ServerLogin:
    """Verifies one client's login against ``password``.

    Attributes:
        state: a :class:`LoginState`.
        login: the accepted :class:`AppLogin` (who logged in), once ``LOGGED_IN``.
        session_key: this connection's session key, once ``LOGGED_IN``.
    """

    def __init__(self, password: str, *, challenge_factory=crypto.new_challenge) -> None:
        self._password = password
        self._new_challenge = challenge_factory
        self._challenge: str | None = None
        self.state = LoginState.IDLE
        self.login: AppLogin | None = None
        self.session_key: str | None = None

    def on_challenge(self, msg: AppChallenge) -> AppChallengeResult:
        """Issue a fresh challenge (a new one replaces an unused one)."""
        if self.state is LoginState.LOGGED_IN:
            raise ProtocolError("AppChallenge after login")
        self._challenge = self._new_challenge()
        self.state = LoginState.CHALLENGED
        return msg.reply(AppChallengeResult, challenge=self._challenge)

    def on_login(self, msg: AppLogin) -> AppLoginResult:
        """Check the digest. One attempt per challenge: the challenge is spent either way.

        Returns:
            ``AppLoginResult(ok=True)`` on success. On failure the result carries
            ``ok=False`` and an ``error``; :attr:`state` is ``FAILED`` and the caller sends
            the result, then closes the connection.
        """
        challenge, self._challenge = self._challenge, None
        if challenge is None:
            self.state = LoginState.FAILED
            return msg.reply(AppLoginResult, ok=False, error="no challenge")
        expected = Identity.of(msg).digest(challenge, self._password)
        if not crypto.digests_equal(expected, msg.digest):
            self.state = LoginState.FAILED
            return msg.reply(AppLoginResult, ok=False, error="login failed")
        self.state = LoginState.LOGGED_IN
        self.login = msg
        self.session_key = crypto.session_key(challenge, self._password)
        return msg.reply(AppLoginResult, ok=True)


def check_login(msg: AppCheckLogin, password: str) -> AppCheckLoginResult:
    """Answer the PBX Manager's password check (``AppCheckLogin``, no login needed).

    The SDK says the digest is what PbxAdminApi ``GetAppLogin {app, challenge}`` returns,
    "which can be used to login to an App service", but not which identity fields went into
    it: an App-object login digest with only ``app`` and ``domain`` known. provd accepts the
    two readings, ``app:domain::::challenge:password`` (AppLogin with empty sip/guid/dn, no
    ``info``) and ``app:domain:challenge:password``, compared in constant time. Both need the
    instance password; a capture of a real check settles which one a PBX sends.
    """
    candidates = (
        Identity(app=msg.app, domain=msg.domain).digest(msg.challenge, password),
        crypto.sha256_hex(f"{msg.app}:{msg.domain}:{msg.challenge}:{password}"),
    )
    ok = bool(msg.challenge) and any(crypto.digests_equal(c, msg.digest) for c in candidates)
    return msg.reply(
        AppCheckLoginResult,
        app=msg.app,
        domain=msg.domain,
        ok=ok,
        error=None if ok else "digest does not match the instance password",
    )


class ClientLogin:
    """Logs in to an AppWebsocket server.

    Password login: ``start()`` → send; ``on_challenge()`` returns the ``AppLogin`` to send.
    Service login: ``on_challenge()`` returns a ``GetServiceLogin`` to send *on the PBX
    connection*; hand its result to ``on_service_login()`` for the ``AppLogin``. Either way
    finish with ``on_result()``.
    """

    def __init__(
        self,
        *,
        identity: Identity | None = None,
        password: str | None = None,
        service: str | None = None,
    ) -> None:
        if (password is None) == (service is None):
            raise ValueError("give either identity+password or a service name")
        if password is not None and identity is None:
            raise ValueError("a password login needs an identity")
        self._identity = identity
        self._password = password
        self._service = service
        self._challenge: str | None = None
        self.state = LoginState.IDLE
        self.session_key: str | None = None

    def start(self) -> AppChallenge:
        self.state = LoginState.CHALLENGED
        return AppChallenge()

    def on_challenge(self, msg: AppChallengeResult) -> AppLogin | GetServiceLogin:
        if self.state is not LoginState.CHALLENGED:
            raise ProtocolError("unexpected AppChallengeResult")
        self._challenge = msg.challenge
        self.state = LoginState.LOGGING_IN
        if self._service is not None:
            return GetServiceLogin(app=self._service, challenge=msg.challenge)
        ident, password = self._identity, self._password
        assert ident is not None and password is not None
        self.session_key = crypto.session_key(msg.challenge, password)
        return ident.login(ident.digest(msg.challenge, password))

    def on_service_login(self, result: GetServiceLoginResult, pbx_session_key: str) -> AppLogin:
        """Turn the PBX's ready-made login into our ``AppLogin``.

        Raises:
            LoginRefused: the PBX answered with an ``error``.
            ProtocolError: the encrypted session key does not decrypt.
        """
        if self.state is not LoginState.LOGGING_IN or self._service is None:
            raise ProtocolError("unexpected GetServiceLoginResult")
        failure = result.failure  # a text or a number with errorText (spec section 8.3)
        if failure is not None:
            self.state = LoginState.FAILED
            raise LoginRefused(f"PBX refused service login: {failure}")
        self.session_key = crypto.app_decrypt(result.salt, pbx_session_key, result.key)
        return Identity.of(result).login(result.digest)

    def on_result(self, msg: AppLoginResult) -> None:
        """Raises :class:`LoginRefused` unless the server said ``ok``."""
        if self.state is not LoginState.LOGGING_IN:
            raise ProtocolError("unexpected AppLoginResult")
        if msg.ok is not True:
            self.state = LoginState.FAILED
            raise LoginRefused(f"login refused: {msg.error or 'no ok'}")
        self.state = LoginState.LOGGED_IN


def make_service_login(
    *,
    request: GetServiceLogin,
    caller: Identity,
    target_password: str,
    pbx_session_key: str,
    salt: str | None = None,
) -> GetServiceLoginResult:
    """The PBX side of ``GetServiceLogin``: a login for ``caller`` to service ``request.app``.

    ``app`` in the login is the target service's name; the other identity fields are the
    caller's (the App object that asked), as a user logging into that app. The digest is
    computed with the *target's* password over the target's challenge; the target's session
    key travels RC4-encrypted under ``salt`` and the caller's PBX-connection session key.
    """
    salt = salt if salt is not None else secrets.token_hex(8)
    login = attrs.evolve(caller, app=request.app)
    digest = login.digest(request.challenge, target_password)
    target_key = crypto.session_key(request.challenge, target_password)
    return request.reply(
        GetServiceLoginResult,
        **attrs.asdict(login, recurse=False),
        digest=digest,
        salt=salt,
        key=crypto.app_encrypt(salt, pbx_session_key, target_key),
    )
