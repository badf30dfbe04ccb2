"""The simulator's one configuration object, built from TOML or a mapping.

Why a small schema walker instead of a library: every section is an attrs class whose
annotated fields *are* the schema (as in ``protocol.messages``); :func:`from_mapping` walks
them, checks types, and rejects any key it does not know, naming it with its dotted path
(``devices.domains[0].categories[1].codr``). hypercorn quietly ignores misspelt keys; we
refuse them (style.md, Configuration).

Secrets here (``password`` fields) are simulator credentials for test installations; the
CLI registers them with :func:`provd.logs.register_secret` so they never reach a log line.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
from attrs import frozen

T = TypeVar("T")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


#: Values of ``pbx.service_apis_from``.
SERVICE_APIS_FROM = ("service_info", "app_info")


def _tuple(value: Any) -> tuple:
    return tuple(value)


@frozen(kw_only=True)
class ProvdTarget:
    """Where provd (the app service under test) listens, and what the PBX knows of it."""

    #: AppWebsocket URL of provd's app service; the PBX App object connects here and the
    #: Users service sends ProvisioningPhone here. Empty: set later (``Simulator.set_provd``).
    url: str | None = attrs.field(
        default="ws://127.0.0.1:8090/provd", converter=lambda v: v or None
    )
    #: The App object's password = provd's instance password.
    password: str = "provd-demo-password"  # noqa: S105 (= provd's embedded DEFAULT_PASSWORD)
    #: The service name (sip URI) under which the PBX lists provd in ServicesInfo.
    service_name: str = "provd@example.com"
    title: str = "provd"


@frozen(kw_only=True)
class NodeInfo:
    name: str = "sim-node"
    prefix_intl: str = "00"
    prefix_ntl: str = "0"
    prefix_subs: str = ""
    country_code: str = "49"


@frozen(kw_only=True)
class PbxUserDevice:
    """One entry of a user object's ``devices`` (PbxAdminApi ``GetObject``)."""

    hw: str
    text: str = ""
    #: *TLS only* and *reverse proxy* flags; the Users service sets both (spec 8.4).
    tls: bool = True
    trusted: bool = True


@frozen(kw_only=True)
class PbxUser:
    """A PBX user known to PbxApi presence (SubscribePresence / SetPresence), and a user
    object of PbxAdminApi (``sip`` = its ``h323``, ``num`` = its ``e164``)."""

    sip: str
    num: str = ""
    dn: str = ""
    email: str = ""
    guid: str = ""
    #: The object's ``cn`` (Long Name); empty: ``dn``, else ``sip``.
    cn: str = ""
    devices: tuple[PbxUserDevice, ...] = attrs.field(default=(), converter=_tuple)


@frozen(kw_only=True)
class PhoneRegistration:
    """How a simulated phone registers after it fetched its file (per MAC)."""

    mac: str
    #: false: the phone never registers (wrong credentials, TLS refused...).
    register: bool = True
    #: The address the registration shows (``GetRegsResult.regs[].addr``); empty: the
    #: default ``pbx.register_addr``.
    addr: str = ""


@frozen(kw_only=True)
class FavouriteConfig:
    """A favourite in the App object's first profile (PbxApi SubscribeProfile), as the
    PBX lists it: ``name`` the SIP URI, ``num`` the number, ``dsp`` the display name;
    ``presence``/``dialog``: monitoring available (an internal user)."""

    name: str = ""
    num: str = ""
    dsp: str = ""
    presence: bool = False
    dialog: bool = False


@frozen(kw_only=True)
class PbxConfig:
    domain: str = "example.com"
    #: PbxInfo.pbx: the PBX's node name.
    name: str = "pbx"
    #: PbxInfo.pbxDns.
    dns: str = "pbx.example.com"
    #: The App object for provd: its name is the login's ``app``/``sip``/``dn`` and ``info.appobj``.
    app_object: str = "provd"
    guid: str = "5a1e0c1d2b3a4f5e6d7c8b9a0f1e2d3c"
    #: Reconnect back-off: first delay and cap, in seconds (doubling, half jitter).
    reconnect_initial: float = 1.0
    reconnect_cap: float = 32.0
    node: NodeInfo = NodeInfo()
    users: tuple[PbxUser, ...] = attrs.field(default=(), converter=_tuple)
    #: The App object's first profile at start (profile 1); empty: no profile.
    favourites: tuple[FavouriteConfig, ...] = attrs.field(default=(), converter=_tuple)
    #: Where the PBX reads the APIs an app service offers (what it lists in ServicesInfo)
    #: from the service's AppInfoResult: ``"service_info"`` (the service-info member, filled
    #: by AppWebsocketServiceInfo: what the SDK documents) or ``"app_info"`` (``info.apis``).
    service_apis_from: str = "service_info"
    #: Answer a refused GetServiceLogin with a numeric ``error`` plus ``errorText`` (as the
    #: innovaphone JS client expects) instead of an error text.
    numeric_errors: bool = False
    #: Offer PbxAdminApi on the App-object connection (listed in ``PbxInfo.apis``).
    admin_api: bool = True
    #: What GetObject/GetRegs/UpdateObject answer for an unknown object (the SDK does not
    #: say): "empty" (a result without ``guid``/``regs``) or "error" (``error`` set, shaped
    #: by ``numeric_errors``).
    admin_not_found: str = "empty"
    #: The address a simulated phone registers from, unless ``registrations`` says otherwise.
    register_addr: str = "127.0.0.1:5060"
    #: Per-MAC registration behaviour of simulated phones after they fetched their file.
    registrations: tuple[PhoneRegistration, ...] = attrs.field(default=(), converter=_tuple)


@frozen(kw_only=True)
class CategoryConfig:
    """A provisioning category and the configuration items Devices sends its devices."""

    name: str
    #: Device type for GetProvisioningCategories filtering (PHONE, DECT, GW, VA, APP_PLATFORM).
    type: str = "PHONE"
    #: ``config`` in the Category object: usable for provisioning. False: no codes issued.
    config: bool = True
    coder: str = "G722,OPUS-WB,G711A,G711u,G729"
    stun_server: str = ""
    turn_server: str = ""
    turn_user: str = ""
    turn_password: str = ""
    tz: str = "Europe/Berlin"
    ntp1: str = "pool.ntp.org"
    ntp2: str = ""
    tls_profile: str = "AUTO"
    #: Further items sent verbatim (each a table with a ``type``), after the standard ones.
    extra: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=_tuple)


@frozen(kw_only=True)
class DomainConfig:
    name: str
    #: Administrative password deployed to devices (0x0003); empty: none sent.
    admin_password: str = ""
    categories: tuple[CategoryConfig, ...] = attrs.field(default=(), converter=_tuple)


@frozen(kw_only=True)
class DevicesConfig:
    #: The websocket listener (Devices API and sysclients), ``host:port``; port 0 = any.
    listen: str = "127.0.0.1:0"
    #: The passthrough HTTP listener (hypercorn), ``host:port``.
    http_listen: str = "127.0.0.1:0"
    #: Base path of the Devices instance; the service URL is ``ws://<listen><path>``.
    path: str = "/example.com/devices/"
    service_name: str = "devices-api@example.com"
    title: str = "Devices"
    #: The Devices instance password (service logins are computed with it).
    password: str = "devices-secret"  # noqa: S105
    #: The instance domain: a login for it is ``admin`` in GetLoginInfo.
    instance_domain: str = "example.com"
    #: How many categories go into one GetProvisioningCategoriesResult before ``last``.
    categories_per_result: int = 2
    #: Put ``last`` inside ``config`` instead of at top level of 0x0006 frames.
    last_inside_config: bool = False
    #: Tunnel RECEIVE length asked of devices, bytes.
    tunnel_chunk: int = 16384
    #: Seconds to wait for a device's tunnel answer before 504.
    tunnel_timeout: float = 10.0
    # --- sysclient variants (spec section 8.2); defaults: what the SDK documents most directly
    #: After a correct digest: "silent" (nothing; 0x0003 and config only when they change)
    #: or "resend" (the administrative password and the full configuration again).
    after_digest: str = "silent"
    #: How a configuration run ends: "bare" (a separate {"last":true} frame) or "item"
    #: (``last`` on the final item).
    last_frame: str = "bare"
    #: A device already in a domain identifying with a new code: "password" (a fresh
    #: password, moved to the code's category) or "challenge" (challenged; code ignored).
    code_when_known: str = "password"
    #: Seconds into every admitted session after which Devices assigns a fresh sysclient
    #: password (0x0001), as when an administrator adds the device to a domain; 0 = never.
    password_mid_session: float = 0.0
    #: Send an unknown admin type (0x0007) and an unknown tunnel event (9) after admission.
    unknown_messages: bool = False
    #: A refused sysclient (unknown device, wrong digest, bad code): "close" the socket, or
    #: "keep" it open and silent (shown as unassigned).
    refused: str = "close"
    #: Frames that break the SDK layout (a SEND_RESULT with payload): true = the tunnel
    #: request fails with 502; false = tolerated. Either way they are counted.
    strict_frames: bool = True
    #: Serve the Devices API and sysclients over wss:// with this certificate and key (PEM;
    #: a self-signed certificate is its own CA file for provd's ``devices.ca_file``). The
    #: simulated Users service trusts this certificate. Empty: plain ws://.
    tls_cert: str = ""
    tls_key: str = ""
    domains: tuple[DomainConfig, ...] = attrs.field(default=(), converter=_tuple)
    #: Most websocket connections (sysclients and API sessions) the listener holds at
    #: once; more are refused (and logged, aggregated). A real Devices serves far more.
    max_connections: int = 100000
    #: Devices API requests answered with an error instead (request ``mt`` → error text),
    #: e.g. ``{GetProvisioningCode = "no licence"}``: SDK ``doc/service/Devices.htm`` gives
    #: every result an optional ``error``.
    api_errors: dict[str, str] = attrs.field(factory=dict)


@frozen(kw_only=True)
class UsersConfig:
    """The Users service: how it logs in and how it sends ProvisioningPhone."""

    #: The Users App object's identity, used for its service logins.
    app_object: str = "users"
    guid: str = "0123456789abcdef0123456789abcdef"
    dn: str = "Users"
    #: Seconds to wait for each ProvisioningPhoneResult.
    timeout: float = 30.0
    #: Ask for 7-day codes instead of 15-minute ones.
    rollout: bool = False


@frozen(kw_only=True)
class MyAppsConfig:
    """The simulated myApps: a shell page embedding provd's admin App (``provd sim``)."""

    #: ``host:port`` of the shell page; port 0 picks a free one; empty: no shell.
    listen: str = "127.0.0.1:0"
    #: The admin App's name (provd's ``appservice.admin_app``): the iframe loads
    #: ``<provd URL>/<app>.htm`` and getLogin is answered for this app only.
    app: str = "provd-admin"
    #: The administrator the PBX makes the App's login for.
    sip: str = "admin"
    dn: str = "Administrator"
    guid: str = "a0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5"


@frozen(kw_only=True)
class PhoneConfig:
    """One phone the Users service provisions."""

    mac: str
    user: str
    cn: str = ""
    password: str = ""
    category: str = "Phones"
    #: PBX hardware id; default: the MAC.
    hwid: str = ""
    #: Send this code instead of asking Devices for one (rejection tests).
    code: str = ""


@frozen(kw_only=True)
class SimConfig:
    provd: ProvdTarget = ProvdTarget()
    pbx: PbxConfig = PbxConfig()
    devices: DevicesConfig = DevicesConfig()
    users: UsersConfig = UsersConfig()
    myapps: MyAppsConfig = MyAppsConfig()
    phones: tuple[PhoneConfig, ...] = attrs.field(default=(), converter=_tuple)
    #: JSON file holding the Devices state between runs; empty: memory only.
    state_file: str = ""
    log_level: str = "info"
    #: Provision ``phones`` once the PBX session is up (CLI only).
    provision_on_start: bool = True
    #: Unix socket of ``provd sim`` for ``provd sim ctl`` (CLI only); empty: the default,
    #: ``$XDG_RUNTIME_DIR/provd-sim.sock`` or ``/tmp/provd-sim-<uid>.sock``.
    control_socket: str = ""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SimConfig:
        """Raises :class:`ConfigError` naming the first bad key."""
        config = _build(cls, data, "")
        return config.validated()

    @classmethod
    def from_toml(cls, path: str | Path) -> SimConfig:
        """Raises :class:`ConfigError` (also for unreadable or non-TOML files)."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return cls.from_mapping(data)

    @classmethod
    def default(cls) -> SimConfig:
        """The embedded default: one domain, two phone categories, one phone."""
        return cls.from_mapping(DEFAULT)

    def validated(self) -> SimConfig:
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level: expected debug, info, warning or error")
        if not self.devices.path.startswith("/"):
            raise ConfigError("devices.path: must start with /")
        if self.pbx.service_apis_from not in SERVICE_APIS_FROM:
            choices = ", ".join(SERVICE_APIS_FROM)
            raise ConfigError(f"pbx.service_apis_from: expected one of {choices}")
        if self.pbx.admin_not_found not in ("empty", "error"):
            raise ConfigError("pbx.admin_not_found: expected empty or error")
        for i, reg in enumerate(self.pbx.registrations):
            from ..protocol import ProtocolError, normalize_mac

            try:
                normalize_mac(reg.mac)
            except ProtocolError:
                raise ConfigError(f"pbx.registrations[{i}].mac: not a MAC address") from None
        if bool(self.devices.tls_cert) != bool(self.devices.tls_key):
            raise ConfigError("devices.tls_cert/tls_key: give both or neither")
        if self.devices.categories_per_result < 1:
            raise ConfigError("devices.categories_per_result: must be at least 1")
        if self.devices.max_connections < 1:
            raise ConfigError("devices.max_connections: must be at least 1")
        if not 1 <= self.devices.tunnel_chunk <= 65536:
            raise ConfigError("devices.tunnel_chunk: must be 1..65536")
        for key, allowed in (
            ("after_digest", ("silent", "resend")),
            ("last_frame", ("bare", "item")),
            ("code_when_known", ("password", "challenge")),
            ("refused", ("close", "keep")),
        ):
            if getattr(self.devices, key) not in allowed:
                raise ConfigError(f"devices.{key}: expected {' or '.join(allowed)}")
        from .devices_api import ERROR_REPLIES

        for mt, text in self.devices.api_errors.items():
            if mt not in ERROR_REPLIES:
                known = ", ".join(ERROR_REPLIES)
                raise ConfigError(f"devices.api_errors.{mt}: not a Devices API request ({known})")
            if not isinstance(text, str) or not text:
                raise ConfigError(f"devices.api_errors.{mt}: expected a non-empty string")
        if self.devices.password_mid_session < 0:
            raise ConfigError("devices.password_mid_session: must be 0 or more")
        for i, domain in enumerate(self.devices.domains):
            for j, cat in enumerate(domain.categories):
                for k, item in enumerate(cat.extra):
                    if not isinstance(item.get("type"), str):
                        where = f"devices.domains[{i}].categories[{j}].extra[{k}]"
                        raise ConfigError(f"{where}.type: missing")
        for i, phone in enumerate(self.phones):
            from ..protocol import ProtocolError, normalize_mac

            try:
                normalize_mac(phone.mac)
            except ProtocolError:
                raise ConfigError(f"phones[{i}].mac: not a MAC address") from None
        return self


DEFAULT: dict[str, Any] = {
    "devices": {
        "domains": [
            {
                "name": "example.com",
                "admin_password": "admin-Pwd-42",
                "categories": [
                    {
                        "name": "Phones",
                        "stun_server": "stun.example.com:3478",
                        "turn_server": "turn.example.com:3478",
                        "turn_user": "turnuser",
                        "turn_password": "turn-Secret-1",
                    },
                    {"name": "Phones-Rollout", "coder": "G711A,G722"},
                    {"name": "Gateways", "type": "GW"},
                ],
            }
        ]
    },
    "phones": [
        {
            "mac": "00:15:65:11:22:33",
            "user": "alice",
            "cn": "Alice Example",
            "password": "Alice-Pwd-1",
            "category": "Phones",
        },
    ],
}


# --- the schema walker -----------------------------------------------------------------------


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a table")
    fields = attrs.fields_dict(cls)
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"{_where(path, key)}: unknown key")
    kwargs = {key: _convert(value, hints[key], _where(path, key)) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        missing = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in data]
        raise ConfigError(f"{_where(path, missing[0])}: missing" if missing else str(exc)) from None


def _convert(value: Any, kind: Any, path: str) -> Any:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in get_args(kind) if a is not type(None)]
        return _convert(value, inner[0], path)
    if attrs.has(kind):
        return _build(kind, value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected an array")
        item_kind = get_args(kind)[0]
        return tuple(_convert(v, item_kind, f"{path}[{i}]") for i, v in enumerate(value))
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table")
        return dict(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string")
        return value
    raise TypeError(f"unsupported config type {kind!r} at {path}")  # a bug in this module
