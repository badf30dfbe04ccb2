"""The one exception every protocol decoder raises for bad input.

Contract (as in h11's ``next_event``): a decoder in :mod:`provd.protocol` either returns a
value or raises :class:`ProtocolError`. Any other exception on peer input is a bug, and the
fuzz tests in ``tests/protocol`` hold the code to that.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer sent something the protocol does not allow.

    Attributes:
        reason: a short, log-safe description (never contains secrets or the raw input).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoginRefused(ProtocolError):
    """A login digest did not match, or a login arrived without a challenge."""
