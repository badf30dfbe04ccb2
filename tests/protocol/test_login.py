"""Login state machines, played against each other (h11's ConnectionPair idea)."""

import pytest

from provd.protocol import LoginRefused, ProtocolError, crypto
from provd.protocol.login import ClientLogin, Identity, LoginState, ServerLogin, make_service_login
from provd.protocol.messages import (
    AppChallenge,
    AppLogin,
    AppLoginResult,
    GetServiceLogin,
    decode_text,
    encode_text,
)


def wire(msg):
    """Send a message over a fake link: encode and decode it again."""
    return decode_text(encode_text(msg))


PBX = Identity(
    app="provd",
    domain="example.com",
    sip="provd",
    guid="g",
    dn="provd",
    pbx_obj="provd",
    info={"appobj": "provd", "cn": "Jörg/α"},
)


def run_password_login(client_password, server_password):
    server = ServerLogin(server_password)
    client = ClientLogin(identity=PBX, password=client_password)
    challenge = server.on_challenge(wire(client.start()))
    login = client.on_challenge(wire(challenge))
    result = server.on_login(wire(login))
    return client, server, wire(result)


class TestPasswordLogin:
    def test_success_both_sides_agree_on_session_key(self):
        """A right password logs in and both sides derive the same session key."""
        client, server, result = run_password_login("secret", "secret")
        client.on_result(result)
        assert server.state is LoginState.LOGGED_IN
        assert client.state is LoginState.LOGGED_IN
        assert client.session_key == server.session_key is not None
        assert server.login.info == PBX.info

    def test_wrong_password_refused(self):
        """A wrong password gets ok=false, FAILED, and the client raises LoginRefused."""
        client, server, result = run_password_login("wrong", "secret")
        assert result.ok is False and server.state is LoginState.FAILED
        assert server.session_key is None
        with pytest.raises(LoginRefused):
            client.on_result(result)

    def test_login_without_challenge_refused(self):
        """An AppLogin with no challenge issued is refused."""
        server = ServerLogin("secret")
        result = server.on_login(AppLogin(app="a", digest="00"))
        assert result.ok is False and server.state is LoginState.FAILED

    def test_one_attempt_per_challenge(self):
        """Replaying a correct login against the same (spent) challenge fails."""
        server = ServerLogin("secret")
        client = ClientLogin(identity=PBX, password="secret")
        login = client.on_challenge(server.on_challenge(client.start()))
        server2 = ServerLogin("secret", challenge_factory=lambda: "same")
        server2.on_challenge(AppChallenge())
        bad = server2.on_login(AppLogin(app="a", digest="00"))
        assert bad.ok is False
        assert server2.on_login(login).ok is False  # challenge already spent
        assert server.on_login(login).ok is True

    def test_src_echoed(self):
        """Challenge and login results echo src."""
        server = ServerLogin("p")
        assert server.on_challenge(AppChallenge(src="s1")).src == "s1"

    def test_challenge_after_login_is_protocol_error(self):
        """A second AppChallenge after login is a protocol violation."""
        _client, server, _result = run_password_login("p", "p")
        with pytest.raises(ProtocolError):
            server.on_challenge(AppChallenge())


class TestServiceLogin:
    def test_service_login_round_trip(self):
        """Users service → PBX GetServiceLogin → provd: provd accepts, keys agree."""
        pbx_key = crypto.session_key("1111", "users-pwd")  # Users service's PBX connection
        provd = ServerLogin("provd-pwd")
        users = ClientLogin(service="provd")
        ask = users.on_challenge(wire(provd.on_challenge(wire(users.start()))))
        assert isinstance(ask, GetServiceLogin) and ask.app == "provd"
        caller = Identity(
            app="users",
            domain="example.com",
            sip="users",
            guid="g2",
            dn="Users",
            pbx_obj="users",
            info={"appobj": "users"},
        )
        answer = make_service_login(
            request=wire(ask), caller=caller, target_password="provd-pwd", pbx_session_key=pbx_key
        )
        login = users.on_service_login(wire(answer), pbx_key)
        result = provd.on_login(wire(login))
        assert result.ok is True
        users.on_result(result)
        assert users.session_key == provd.session_key
        assert provd.login.sip == "users"

    def test_service_login_error_refused(self):
        """A GetServiceLoginResult with error raises LoginRefused."""
        from provd.protocol.messages import GetServiceLoginResult

        users = ClientLogin(service="x")
        users.start()
        users.on_challenge(wire(ServerLogin("p").on_challenge(AppChallenge())))
        with pytest.raises(LoginRefused):
            users.on_service_login(GetServiceLoginResult(error="unknown service"), "k")

    def test_service_login_with_wrong_target_password_refused(self):
        """A PBX computing with the wrong target password produces a refused login."""
        pbx_key = crypto.session_key("1", "x")
        provd = ServerLogin("provd-pwd")
        users = ClientLogin(service="provd")
        ask = users.on_challenge(provd.on_challenge(users.start()))
        answer = make_service_login(
            request=ask, caller=PBX, target_password="nope", pbx_session_key=pbx_key
        )
        assert provd.on_login(users.on_service_login(answer, pbx_key)).ok is False

    def test_unexpected_result_order(self):
        """An AppLoginResult before login was attempted is a ProtocolError."""
        with pytest.raises(ProtocolError):
            ClientLogin(identity=PBX, password="p").on_result(AppLoginResult(ok=True))


def test_client_requires_one_credential():
    """A client needs exactly one of password or service."""
    with pytest.raises(ValueError):
        ClientLogin()
    with pytest.raises(ValueError):
        ClientLogin(identity=PBX, password="p", service="s")
