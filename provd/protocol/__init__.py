"""Sans-I/O cores for every innovaphone protocol provd speaks. No trio in here.

- :mod:`.messages`: typed AppWebsocket messages and their JSON codec;
- :mod:`.login`: AppWebsocket login state machines (server and client, password and service);
- :mod:`.crypto`: digests, session keys, RC4 encrypt/decrypt, hash;
- :mod:`.sysclient`: Sysclient frames and the device-side state machine.

Every decoder raises only :class:`ProtocolError` on bad input.
"""

from .errors import LoginRefused, ProtocolError
from .mac import normalize_mac

__all__ = ["LoginRefused", "ProtocolError", "normalize_mac"]
