"""``com.innovaphone.devices``: the Devices JSON API, provd being the client (spec section 5)."""

from __future__ import annotations

import attrs

from ._codec import Message, lenient_one, message, record, wire

DEVICES_API = "com.innovaphone.devices"

#: Device types accepted by ``GetProvisioningCategories.type``.
DEVICE_TYPES = ("VA", "GW", "PHONE", "DECT", "APP_PLATFORM")


@record
class Category:
    id: int
    name: str
    domain_id: int | None = wire("domainId", default=None)
    config: bool = False


@record
class Device:
    id: int
    hw_id: str = wire("hwId", default="")
    name: str = ""
    domain_id: int | None = wire("domainId", default=None)
    product: str = ""
    version: str = ""
    type: str = ""
    pbx_active: bool = wire("pbxActive", default=False)
    online: bool = False
    has_lease_licenses: bool = wire("hasLeaseLicenses", default=False)
    uri: str = ""


@message("GetLoginInfo")
class GetLoginInfo(Message):
    pass


@message("GetLoginInfoResult")
class GetLoginInfoResult(Message):
    """``key`` is the session GUID used in passthrough URLs while this session lives."""

    key: str
    admin: bool = False


@message("GetProvisioningCategories")
class GetProvisioningCategories(Message):
    domain_id: int | None = wire("domainId", default=None)
    type: str | None = None


@message("GetProvisioningCategoriesResult")
class GetProvisioningCategoriesResult(Message):
    """One part of the category list; keep reading until ``last``."""

    categories: tuple[Category, ...] = attrs.field(default=(), converter=tuple)
    last: bool = True
    error: str | None = None


@message("GetProvisioningCode")
class GetProvisioningCode(Message):
    """``rollout`` asks for 7 days' validity instead of 15 minutes."""

    category: str
    domain_id: int | None = wire("domainId", default=None)
    sip: str | None = None
    rollout: bool | None = None


@message("GetProvisioningCodeResult")
class GetProvisioningCodeResult(Message):
    code: str = ""
    valid_until: int | None = wire("validUntil", default=None)
    error: str | None = None


@message("GetProvisionedDevice")
class GetProvisionedDevice(Message):
    code: str
    domain_id: int | None = wire("domainId", default=None)


@message("GetProvisionedDeviceResult")
class GetProvisionedDeviceResult(Message):
    code: str = ""
    device: Device | None = lenient_one(default=None)
    error: str | None = None


@message("DeviceProvisioned")
class DeviceProvisioned(Message):
    """Unsolicited, on the session that created ``code``, once a device used it."""

    code: str = ""
    device: Device | None = lenient_one(default=None)
