"""The record of one phone fetching its file, handed to the daemon for persistence."""

from __future__ import annotations

from attrs import frozen


@frozen(kw_only=True)
class FetchRecord:
    """A successful per-phone fetch.

    Attributes:
        time: when, as a UTC epoch timestamp in seconds.
        address: the client's IP address.
        user_agent: the User-Agent header as sent ("" if none).
        vendor: the vendor provd identified (``"yealink"``, ...).
        model: model from the User-Agent or file name, or None.
        firmware: firmware version from the User-Agent, or None.
        file: the file name served.
        mac: the phone's MAC, 12 lowercase hex digits.
    """

    time: float
    address: str
    user_agent: str
    vendor: str
    model: str | None
    firmware: str | None
    file: str
    mac: str
