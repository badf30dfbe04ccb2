"""The pure cores, without sockets: domain rules, the sysclient server played against
provd's own device core (h11's ConnectionPair idea), the tunnel relay against provd's own
tunnel endpoint, the services registry, and the fault plan."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provd.protocol import crypto
from provd.protocol.login import ClientLogin, Identity
from provd.protocol.messages import (
    AppChallengeResult,
    GetProvisioningCategories,
    GetServiceLogin,
    decode_text,
    encode_text,
)
from provd.protocol.sysclient import (
    AdminPasswordReceived,
    Authenticated,
    ConfigReceived,
    Identify,
    PasswordAssigned,
    SysclientDevice,
    TunnelEvent,
    TunnelFrame,
    decrypt_turn_password,
)
from provd.protocol.tunnel import TunnelEndpoint
from provd.sim.devices_api import DevicesApiSession
from provd.sim.domain import CODE_TTL, ROLLOUT_TTL, DevicesDomain, DomainError, Refused
from provd.sim.faults import Direction, FaultPlan, Party
from provd.sim.services import ServiceEntry, ServiceRegistry
from provd.sim.sysclient_server import Admitted, Closed, ServerState, SysclientServer
from provd.sim.tunnel import TunnelError, TunnelRelay

from .helpers import ADMIN_PASSWORD, TURN_PASSWORD, FakeClock, sim_config

IDENT = Identify(id="112233445566", product="provd", version="1")


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def domain(clock):
    return DevicesDomain(sim_config().devices.domains, clock=clock)


def pair(domain, ident=IDENT, server_kwargs=None, **device_kwargs):
    """Run a device core against a server core until neither has anything to say."""
    server = SysclientServer(domain, **(server_kwargs or {}))
    device = SysclientDevice(ident, **device_kwargs)
    device_events, server_events = [], []
    to_server = [device.start()]
    while to_server and server.state is not ServerState.CLOSED:
        server_events += server.receive(to_server.pop(0))
        for data in server.outgoing():
            device_events += device.receive(data)
        to_server += device.outgoing()
    return device, server, device_events, server_events


class TestDomain:
    def test_code_validity(self, domain, clock):
        """15 minutes, or 7 days for rollout; expired codes are refused."""
        short = domain.issue_code(domain_id=1, category="Phones")
        long = domain.issue_code(domain_id=1, category="Phones", rollout=True)
        assert short.valid_until == clock.now + CODE_TTL
        assert long.valid_until == clock.now + ROLLOUT_TTL
        clock.now += CODE_TTL + 1
        with pytest.raises(Refused, match="expired"):
            domain.identify_with_code(
                Identify(id=IDENT.id, product="p", version="1", provisioning_code=short.code)
            )
        assert domain.identify_with_code(
            Identify(id=IDENT.id, product="p", version="1", provisioning_code=long.code)
        )

    def test_unknown_and_non_config_categories(self, domain):
        with pytest.raises(DomainError, match="unknown category"):
            domain.issue_code(domain_id=1, category="Nope")
        with pytest.raises(DomainError, match="unknown domain"):
            domain.issue_code(domain_id=9, category="Phones")

    def test_first_use_once_same_mac_may_retry(self, domain):
        """DeviceProvisioned once per code; the same MAC may reuse it, with a new password."""
        code = domain.issue_code(domain_id=1, category="Phones").code
        ident = Identify(id=IDENT.id, product="p", version="1", provisioning_code=code)
        first = domain.identify_with_code(ident)
        again = domain.identify_with_code(ident)
        assert first.first_use and not again.first_use
        assert first.password != again.password and len(again.password) == 32
        assert domain.devices[IDENT.id].password == again.password

    def test_verify_digest(self, domain):
        code = domain.issue_code(domain_id=1, category="Phones").code
        password = domain.identify_with_code(
            Identify(id=IDENT.id, product="p", version="1", provisioning_code=code)
        ).password
        good = Identify(
            id=IDENT.id,
            product="p",
            version="1",
            digest=crypto.sysclient_digest(
                id=IDENT.id, product="p", version="1", challenge="4711", password=password
            ),
        )
        assert domain.verify_digest(good, "4711").mac == IDENT.id
        with pytest.raises(Refused, match="wrong digest"):
            domain.verify_digest(good, "4712")

    def test_update_category_reports_changed_types(self, domain):
        assert domain.update_category(1, "Phones", tz="UTC", ntp1="ntp.x") == {"NTP"}
        assert domain.update_category(1, "Phones", tz="UTC") == set()

    def test_state_round_trip(self, domain):
        """Devices and codes survive a save/load; online does not."""
        code = domain.issue_code(domain_id=1, category="Rollout").code
        domain.identify_with_code(
            Identify(id=IDENT.id, product="p", version="1", provisioning_code=code)
        )
        domain.set_online(IDENT.id, True)
        copy = DevicesDomain(sim_config().devices.domains)
        copy.load_json(domain.to_json())
        restored = copy.devices[IDENT.id]
        assert restored.password == domain.devices[IDENT.id].password
        assert copy.categories[restored.category_id].name == "Rollout"
        assert not restored.online and copy.codes[code].mac == IDENT.id


class TestSysclientServer:
    def test_code_then_reconnect(self, domain):
        """Device core vs server core: code → password + config; reconnect → digest → config."""
        code = domain.issue_code(domain_id=1, category="Phones").code
        device, _server, events, server_events = pair(domain, code=code)
        assert isinstance(server_events[0], Admitted) and server_events[0].admission.first_use
        password = next(e.password for e in events if isinstance(e, PasswordAssigned))
        assert (
            next(e.password for e in events if isinstance(e, AdminPasswordReceived))
            == ADMIN_PASSWORD
        )
        media = next(
            e.item.item
            for e in events
            if isinstance(e, ConfigReceived) and e.item and e.item.type == "MEDIA"
        )
        assert decrypt_turn_password(media, password) == TURN_PASSWORD
        assert device.initial_config_done
        # Default: Devices is silent after a correct digest; the quiet timer admits.
        device2, _, events2, server_events2 = pair(domain, password=password)
        assert events2 == [] and server_events2 == [Admitted(domain.devices[IDENT.id])]
        assert isinstance(device2.quiet()[0], Authenticated)
        # Variant: the full set again after the digest.
        device3, _, events3, _ = pair(
            domain, server_kwargs={"after_digest": "resend"}, password=password
        )
        assert isinstance(events3[0], Authenticated) and device3.initial_config_done

    def test_wrong_digest_closes(self, domain):
        code = domain.issue_code(domain_id=1, category="Phones").code
        pair(domain, code=code)
        _, server, _, server_events = pair(domain, password="wrong" * 6)
        assert server_events == [Closed("wrong digest")] and server.outgoing() == []

    @pytest.mark.parametrize(
        "data",
        [b"", b"\x09", b"\x01\x00", b"\x01\x00\x00{", b"\x02\x00\x00\x00\x01\x00\x00\x00\x00"],
    )
    def test_garbage_closes(self, domain, data):
        """Malformed frames or a tunnel before admission: Closed, never an exception."""
        server = SysclientServer(domain)
        (event,) = server.receive(data)
        assert isinstance(event, Closed) and server.state is ServerState.CLOSED

    @given(st.binary(max_size=64))
    def test_any_bytes_never_raise(self, data):
        server = SysclientServer(DevicesDomain(sim_config().devices.domains))
        for event in server.receive(data):
            assert isinstance(event, Closed | Admitted)

    def test_push_config_marks_last(self, domain):
        code = domain.issue_code(domain_id=1, category="Phones").code
        device, server, _, _ = pair(domain, code=code)
        server.push_config({"PHONE", "NTP"})
        events = [e for data in server.outgoing() for e in device.receive(data)]
        assert [(e.item and e.item.type, e.item and e.item.last) for e in events] == [
            ("PHONE", False),
            ("NTP", False),
            (None, None),  # the bare {"last":true} frame (default variant)
        ]
        device, server, _, _ = pair(domain, server_kwargs={"last_frame": "item"}, code=code)
        server.push_config({"PHONE", "NTP"})
        events = [e for data in server.outgoing() for e in device.receive(data)]
        assert [(e.item.type, e.item.last) for e in events] == [("PHONE", False), ("NTP", True)]


class TestTunnelRelay:
    def run(self, relay, endpoint, frames):
        to_device = list(frames)
        while to_device and not relay.done:
            for answer in endpoint.receive(to_device.pop(0)):
                to_device += relay.on_frame(answer)
        return to_device

    def test_relay_with_provd_endpoint(self):
        """Request out in SEND frames, response in chunks no longer than asked."""
        page = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: b\r\n\r\nnop"
        seen = []
        relay = TunnelRelay(5, chunk=4)
        endpoint = TunnelEndpoint(lambda req: seen.append(req) or page)
        rest = self.run(relay, endpoint, relay.start("GET", "/a?b", [(b"host", b"h")], b""))
        assert seen[0].startswith(b"GET /a?b HTTP/1.1\r\nhost: h\r\n")
        assert relay.response.status == 404 and relay.response.body == b"nop"
        assert (b"x-a", b"b") in relay.response.headers
        assert rest[-1] == TunnelFrame(5, TunnelEvent.SHUTDOWN)

    def test_more_than_asked_is_an_error(self):
        relay = TunnelRelay(1, chunk=4)
        relay.start("GET", "/", [], b"")
        with pytest.raises(TunnelError, match="RECEIVE of 4"):
            relay.on_frame(TunnelFrame(1, TunnelEvent.RECEIVE_RESULT, b"HTTP/"))

    def test_device_shutdown_ends_close_delimited_body(self):
        """Without Content-Length the body ends at the device's shutdown, answered in kind."""
        relay = TunnelRelay(1, chunk=100)
        relay.start("GET", "/", [], b"")
        relay.on_frame(TunnelFrame(1, TunnelEvent.RECEIVE_RESULT, b"HTTP/1.0 200 OK\r\n\r\nab"))
        assert relay.on_frame(TunnelFrame(1, TunnelEvent.SHUTDOWN)) == [
            TunnelFrame(1, TunnelEvent.SHUTDOWN)
        ]
        assert relay.response.body == b"ab"

    def test_truncated_response_is_an_error(self):
        relay = TunnelRelay(1, chunk=100)
        relay.start("GET", "/", [], b"")
        relay.on_frame(
            TunnelFrame(
                1, TunnelEvent.RECEIVE_RESULT, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"
            )
        )
        with pytest.raises(TunnelError):
            relay.on_frame(TunnelFrame(1, TunnelEvent.SHUTDOWN))

    def test_receive_length_is_big_endian(self):
        relay = TunnelRelay(3, chunk=0x1234)
        *_, receive = relay.start("POST", "/", [], b"body")
        assert receive == TunnelFrame(3, TunnelEvent.RECEIVE, struct.pack(">I", 0x1234))


class TestServices:
    def test_service_login_round_trip(self):
        """A ClientLogin decrypts the key the registry encrypted and gets the target's key."""
        registry = ServiceRegistry()
        registry.set(
            ServiceEntry(name="svc", url="ws://x/", password="target-pw", apis={"api": {}})
        )
        client = ClientLogin(service="svc")
        client.start()
        ask = client.on_challenge(AppChallengeResult(challenge="123"))
        pbx_key = crypto.session_key("c", "pbx")
        result = registry.service_login(
            ask, caller=Identity(app="a", domain="d"), pbx_session_key=pbx_key
        )
        login = client.on_service_login(decode_text(encode_text(result)), pbx_key)
        assert client.session_key == crypto.session_key("123", "target-pw")
        assert login.digest == crypto.login_digest(
            app="svc",
            domain="d",
            sip="",
            guid="",
            dn="",
            info=None,
            challenge="123",
            password="target-pw",
        )

    def test_unknown_service_and_unpublished_not_listed(self):
        registry = ServiceRegistry()
        registry.set(ServiceEntry(name="quiet", url="ws://q/", password="p"))
        assert registry.services_info().services == ()
        result = registry.service_login(
            GetServiceLogin(app="nope", challenge="1"),
            caller=Identity(app="a"),
            pbx_session_key="k",
        )
        assert result.error == "unknown service"


class TestApiSession:
    def test_categories_one_result_when_empty(self, domain):
        session = DevicesApiSession(
            domain, login_domain="example.com", admin=True, categories_per_result=2
        )
        (result,) = session.handle(GetProvisioningCategories(type="DECT", src="s"))
        assert result.last and result.categories == () and result.src == "s"

    def test_other_domain_needs_admin(self, domain):
        session = DevicesApiSession(domain, login_domain="other.org", admin=False)
        (result,) = session.handle(GetProvisioningCategories(domain_id=1))
        assert result.error == "no access to domain"


class TestFaultPlan:
    def test_drop_rule_consumed(self):
        plan = FaultPlan()
        plan.drop_after(Party.SYSCLIENT, "IDENTIFY", times=2)
        hits = [plan.should_drop(Party.SYSCLIENT, "IDENTIFY", Direction.RECEIVED) for _ in range(3)]
        assert hits == [True, True, False]
        assert not plan.should_drop(Party.PBX, "IDENTIFY", Direction.RECEIVED)

    def test_direction_matters(self):
        plan = FaultPlan()
        plan.drop_after(Party.PBX, "PbxInfo", direction=Direction.SENT)
        assert not plan.should_drop(Party.PBX, "PbxInfo", Direction.RECEIVED)
        assert plan.should_drop(Party.PBX, "PbxInfo", Direction.SENT)
