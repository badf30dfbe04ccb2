"""A phone actor's link for a first registration, without a connection: the tests that
drive the actor's event handlers (``_on_password``, ``_on_settled``...) one by one."""

from __future__ import annotations

from provd.actors.phone import PhoneContext, _Link
from provd.actors.state import DevicesLocator, HandshakeLimiter, Outcomes, PhoneDirectory
from provd.config import Config
from provd.protocol.tunnel import TunnelEndpoint
from provd.store.actor import Store


def first_registration_link(
    store: Store, directory: PhoneDirectory, mac: str, config: Config
) -> _Link:
    """The link of ``mac`` (already in ``directory``) presenting its provisioning code."""
    ctx = PhoneContext(
        config=config,
        store=store,
        directory=directory,
        locator=DevicesLocator("ws://127.0.0.1:1/devices/"),
        outcomes=Outcomes(),
        handshakes=HandshakeLimiter(1),
    )
    return _Link(directory.get(mac), ctx, TunnelEndpoint(lambda _r: b""), use_code=True)
