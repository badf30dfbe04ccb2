"""Thin trio shells that put the sans-I/O protocol cores on real websockets.

Used by both the daemon's actors and the simulator, so both sides speak through the same
code paths the tests exercise.
"""

from .address import parse_listen, ws_url
from .appws import (
    AppWebsocket,
    ConnectionLost,
    accept_login,
    connect,
    login_as_service,
    login_with_password,
    serve,
)
from .requests import RequestTracker

__all__ = [
    "AppWebsocket",
    "ConnectionLost",
    "RequestTracker",
    "accept_login",
    "connect",
    "login_as_service",
    "login_with_password",
    "parse_listen",
    "serve",
    "ws_url",
]
