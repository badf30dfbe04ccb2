"""provd's one configuration object, from TOML, with typed defaults.

Every key is validated when the file is loaded: an unknown key, a wrong type or a bad value
is refused with a message naming the key (``appservice.listen: ...``). With no file at all
the embedded defaults run provd on a laptop: loopback listeners, SQLite in the working
directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import attrs
from attrs import frozen

from .phones.settings import PhonesSettings
from .transport.address import devices_url_problem, parse_listen

#: The default instance password, for trying provd on a laptop. provd warns when it runs
#: with it; a real PBX App object must use a secret of its own.
DEFAULT_PASSWORD = "provd-demo-password"  # noqa: S105 - documented laptop default
#: The password published in ``etc/provd.toml`` and ``etc/sim.toml`` (so the two examples
#: talk to each other unchanged). provd warns at every start while it runs with it.
EXAMPLE_PASSWORD = "example-only-change-me-0123456789"  # noqa: S105 - published example
#: Shortest instance password accepted (the embedded laptop default and the demo's random
#: passwords are longer).
MIN_PASSWORD_LEN = 12
#: The configuration file used when neither ``--config`` nor ``$PROVD_CONFIG`` names one.
SYSTEM_CONFIG = "/etc/provd/provd.toml"

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "console", "kv", "json", "journal")


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


def _listen(section: str):
    def check(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise ConfigError(f"{section}.{attribute.name}: {exc}") from None

    return check


@frozen(kw_only=True)
class AppServiceSettings:
    listen: str = attrs.field(default="127.0.0.1:8090", validator=_listen("appservice"))
    password: str = DEFAULT_PASSWORD
    title: str = "provd"
    tls_cert: str = ""
    tls_key: str = ""
    #: Seconds a new connection has to complete its login.
    login_timeout: float = 10.0
    #: Largest AppWebsocket message accepted, bytes.
    max_message_size: int = 1 << 20
    #: Largest message accepted before a connection has logged in, bytes.
    max_login_message_size: int = 16 << 10
    #: Connections (logged in or not) the listener holds at once; more are closed at once.
    max_connections: int = 256
    #: Seconds a new TCP (or TLS) connection has to complete the websocket upgrade.
    handshake_timeout: float = 10.0
    #: Websocket ping every so many seconds on a logged-in session (0 = off) ...
    ping_interval: float = 30.0
    #: ... and seconds to wait for its pong before the session is closed as dead.
    ping_timeout: float = 15.0
    #: Wrong logins from one address are answered ever later: first delay, doubling, cap.
    login_delay_initial: float = 0.5
    login_delay_cap: float = 30.0
    #: Refused logins are logged once per address, then summed up every so many seconds.
    login_report_interval: float = 60.0
    #: Name of provd's admin App (its file is ``<admin_app>.htm``); a login whose ``app`` is
    #: this name may use the admin API (myApps' login for the App, or the App's password
    #: login). Must differ from the service name other apps log in with.
    admin_app: str = "provd-admin"


@frozen(kw_only=True)
class StoreSettings:
    path: str = "provd.db"
    #: Fetch records kept per phone (the newest; older ones are pruned in small batches).
    fetch_history: int = 50
    #: Longest User-Agent stored with a fetch record, characters (the rest is cut).
    max_user_agent: int = 512
    #: Seconds between checks that the database file on disk is still the one provd has
    #: open (also checked before every acknowledged write).
    check_interval: float = 10.0


@frozen(kw_only=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"
    #: Most ``phones.fetch`` access-log lines per second (a boot storm is summarised with a
    #: ``suppressed`` count on the next line); 0 = no access log.
    access_rate: float = 20.0


@frozen(kw_only=True)
class ProvisioningSettings:
    #: Seconds from ``ProvisioningPhone`` until provd answers ``error`` if Devices has not
    #: assigned a password and sent the initial configuration.
    timeout: float = 30.0
    #: Sysclient handshakes in flight at once, so a restart with thousands of phones does not
    #: stampede the Devices app.
    max_handshakes: int = 32
    #: Seconds one sysclient handshake may take.
    handshake_timeout: float = 15.0
    #: Reconnect back-off: first delay and cap, seconds.
    backoff_initial: float = 1.0
    backoff_cap: float = 60.0
    #: Identify attempts with a provisioning code before the phone is marked failed.
    code_attempts: int = 5
    #: Sysclient product for a phone of unknown vendor that has not fetched a file yet
    #: (otherwise the identify describes the phone: vendor, model, firmware).
    product: str = "provd"
    #: Devices service URL to use before (or without) a PBX telling it; normally empty.
    devices_url: str = ""
    #: Seconds of silence from Devices, after the challenge answer, that count as
    #: admission (Devices sends no "ok"; only a close refuses), and after admission that
    #: mean no (further) initial configuration is coming.
    admit_quiet: float = 2.0
    #: Websocket ping interval and pong timeout on every sysclient connection, seconds; a
    #: half-open Devices (no pong) ends the connection and the phone reconnects.
    ping_interval: float = 30.0
    ping_timeout: float = 15.0
    #: A connection must have lived this long (seconds) before the reconnect back-off
    #: starts afresh.
    backoff_reset_after: float = 30.0
    #: Cap (seconds) on the pause before restarting a phone actor that crashed repeatedly;
    #: an actor is never given up.
    restart_cap: float = 300.0
    #: Extra handshake slots only first provisionings (a new code) may use; they also go
    #: ahead of waiting reconnects.
    code_handshakes: int = 8


@frozen(kw_only=True)
class DevicesSettings:
    """TLS for provd's connections to Devices (sysclients and the Devices JSON API) when
    its URL is ``wss://`` (an App Platform; spec section 8.3)."""

    #: PEM file with the App Platform's certificate or its CA, trusted in addition to the
    #: system's CAs. Empty: system CAs only.
    ca_file: str = ""
    #: false turns certificate checks off (logged as a warning at every start).
    verify: bool = True


@frozen(kw_only=True)
class RegistrationSettings:
    """Checking that each phone registered at the PBX (PbxAdminApi ``GetRegs``, spec 8.4),
    when the PBX session offers PbxAdminApi."""

    #: false: no registration checks (the lifecycle then ends at ``fetched``).
    enabled: bool = True
    #: Seconds between checks of a phone that is registered (or provisioned, not fetched).
    check_interval: float = 300.0
    #: Seconds between checks of a phone that fetched its file but is not seen registered
    #: (the first one this long after the fetch).
    retry_interval: float = 15.0
    #: A phone that fetched its file but is not registered this many seconds later gets
    #: one warning (wrong credentials, TLS refused...); cleared when it registers.
    warn_after: float = 120.0
    #: Most GetRegs requests per second (phones of one user share one request).
    max_per_second: float = 10.0


@frozen(kw_only=True)
class PbxSettings:
    """What provd may change at the PBX through PbxAdminApi (only where asked for)."""

    #: With ``phones.sip_transport = "tcp"``: clear the *TLS only* flag of each provisioned
    #: phone's device entry at its user object (GetObject, then UpdateObject of the whole
    #: ``devices`` list). The Users service creates the entry with *TLS only* set, which
    #: refuses a registration over TCP/UDP.
    fix_device_flags: bool = False


@frozen(kw_only=True)
class ControlSettings:
    #: Unix socket for ``provd status`` / ``provd phones remove`` (empty = next to the db).
    socket: str = ""


def _optional_listen(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    if value:
        _listen("metrics")(_inst, attribute, value)


@frozen(kw_only=True)
class MetricsSettings:
    #: ``host:port`` of the operator HTTP listener (/metrics, /healthz, /readyz); empty = off.
    listen: str = attrs.field(default="", validator=_optional_listen)


_SECTIONS: dict[str, type] = {
    "appservice": AppServiceSettings,
    "phones": PhonesSettings,
    "store": StoreSettings,
    "log": LogSettings,
    "provisioning": ProvisioningSettings,
    "control": ControlSettings,
    "metrics": MetricsSettings,
    "devices": DevicesSettings,
    "registration": RegistrationSettings,
    "pbx": PbxSettings,
}


def _build_section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: must be a table")
    if hasattr(cls, "from_mapping"):
        try:
            return cls.from_mapping(raw)
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    fields = attrs.fields_dict(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(f"{name}.{key}: unknown key")
        default = fields[key].default
        expected = type(default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise ConfigError(
                f"{name}.{key}: must be {expected.__name__}, not {type(value).__name__}"
            )
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


@frozen(kw_only=True)
class Config:
    appservice: AppServiceSettings = attrs.field(factory=AppServiceSettings)
    phones: PhonesSettings = attrs.field(factory=PhonesSettings)
    store: StoreSettings = attrs.field(factory=StoreSettings)
    log: LogSettings = attrs.field(factory=LogSettings)
    provisioning: ProvisioningSettings = attrs.field(factory=ProvisioningSettings)
    control: ControlSettings = attrs.field(factory=ControlSettings)
    metrics: MetricsSettings = attrs.field(factory=MetricsSettings)
    devices: DevicesSettings = attrs.field(factory=DevicesSettings)
    registration: RegistrationSettings = attrs.field(factory=RegistrationSettings)
    pbx: PbxSettings = attrs.field(factory=PbxSettings)
    #: Where it was loaded from (None = embedded defaults).
    source: str | None = None

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str | None = None) -> Config:
        kwargs: dict[str, Any] = {}
        for name, raw in data.items():
            section = _SECTIONS.get(name)
            if section is None:
                raise ConfigError(f"{name}: unknown section")
            kwargs[name] = _build_section(name, section, raw)
        config = cls(**kwargs, source=source)
        config.validate()
        return config

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Config:
        """Load and validate a file.

        Raises:
            ConfigError: for every way the file can be wrong (unreadable, not UTF-8, not
                TOML, nested too deep, a bad key or value); the message starts with the
                path and names the key where there is one.
        """
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # TOML files must be UTF-8 (toml.io, "Spec": "A TOML file must be a valid UTF-8
            # encoded Unicode document"); a Latin-1 editor save is the usual cause.
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigError(
                f"{path}: not valid UTF-8 at line {line} (byte {exc.start}); save it as UTF-8"
            ) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{path}: not valid TOML (nested too deep)") from None
        try:
            return cls.from_mapping(data, source=str(path))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except (TypeError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def load(cls, path: str | None = None) -> Config:
        """``--config`` if given, else ``$PROVD_CONFIG``, else :data:`SYSTEM_CONFIG` when it
        exists, else the embedded defaults (see :func:`default_config_path`)."""
        path = path or default_config_path()
        return cls.from_toml(path) if path else cls()

    def validate(self) -> None:
        a = self.appservice
        if not a.password:
            raise ConfigError("appservice.password: must not be empty")
        if len(a.password) < MIN_PASSWORD_LEN:
            raise ConfigError(
                f"appservice.password: must be at least {MIN_PASSWORD_LEN} characters "
                f"(it is {len(a.password)}); use a long random secret"
            )
        if bool(a.tls_cert) != bool(a.tls_key):
            raise ConfigError("appservice.tls_cert/tls_key: give both or neither")
        self._validate_appservice_limits()
        if self.log.level not in LOG_LEVELS:
            raise ConfigError(f"log.level: must be one of {', '.join(LOG_LEVELS)}")
        if self.log.format not in LOG_FORMATS:
            raise ConfigError(f"log.format: must be one of {', '.join(LOG_FORMATS)}")
        p = self.provisioning
        for key in ("timeout", "handshake_timeout", "backoff_initial", "backoff_cap"):
            if getattr(p, key) <= 0:
                raise ConfigError(f"provisioning.{key}: must be positive")
        if p.devices_url and (problem := devices_url_problem(p.devices_url)):
            raise ConfigError(f"provisioning.devices_url: {problem}")
        if p.max_handshakes < 1 or p.code_attempts < 1:
            raise ConfigError("provisioning.max_handshakes/code_attempts: must be at least 1")
        for key in ("admit_quiet", "ping_interval", "ping_timeout", "restart_cap"):
            if getattr(p, key) <= 0:
                raise ConfigError(f"provisioning.{key}: must be positive")
        if p.backoff_reset_after < 0 or p.code_handshakes < 0:
            raise ConfigError("provisioning.backoff_reset_after/code_handshakes: must be >= 0")
        if not self.store.path:
            raise ConfigError("store.path: must not be empty")
        if self.store.fetch_history < 1:
            raise ConfigError("store.fetch_history: must be at least 1")
        if self.store.max_user_agent < 16:
            raise ConfigError("store.max_user_agent: must be at least 16")
        if self.store.check_interval <= 0:
            raise ConfigError("store.check_interval: must be positive")
        r = self.registration
        for key in ("check_interval", "retry_interval", "warn_after", "max_per_second"):
            if getattr(r, key) <= 0:
                raise ConfigError(f"registration.{key}: must be positive")
        if self.devices.ca_file:
            from .transport.tls import TlsSetupError, client_context

            try:
                client_context(self.devices.ca_file, self.devices.verify)
            except TlsSetupError as exc:
                raise ConfigError(f"devices.ca_file: {exc}") from None

    def _validate_appservice_limits(self) -> None:
        a = self.appservice
        for key in ("login_timeout", "handshake_timeout", "ping_timeout", "login_report_interval"):
            if getattr(a, key) <= 0:
                raise ConfigError(f"appservice.{key}: must be positive")
        for key in ("ping_interval", "login_delay_initial", "login_delay_cap"):
            if getattr(a, key) < 0:
                raise ConfigError(f"appservice.{key}: must not be negative")
        if a.login_delay_cap < a.login_delay_initial:
            raise ConfigError("appservice.login_delay_cap: must be at least login_delay_initial")
        if a.max_connections < 1:
            raise ConfigError("appservice.max_connections: must be at least 1")
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", a.admin_app):
            raise ConfigError("appservice.admin_app: must be a name of letters, digits, . _ -")
        if a.max_login_message_size < 1024:
            raise ConfigError("appservice.max_login_message_size: must be at least 1024")
        if a.max_message_size < a.max_login_message_size:
            raise ConfigError(
                "appservice.max_message_size: must be at least max_login_message_size"
            )
        if self.log.access_rate < 0:
            raise ConfigError("log.access_rate: must not be negative")

    @property
    def control_socket(self) -> str:
        return self.control.socket or str(Path(self.store.path).with_suffix(".sock"))


def default_config_path() -> str | None:
    """The file the CLI and the daemon use without ``--config``: ``$PROVD_CONFIG`` if set,
    else :data:`SYSTEM_CONFIG` when it exists (a package install), else None (embedded
    defaults). An operator's explicit environment variable wins over a file that merely
    exists."""
    env = os.environ.get("PROVD_CONFIG")
    if env:
        return env
    return SYSTEM_CONFIG if os.path.exists(SYSTEM_CONFIG) else None


def password_warnings(config: Config) -> list[str]:
    """Why the instance password is not fit for production (empty list: it is)."""
    password = config.appservice.password
    if password == DEFAULT_PASSWORD:
        return ["appservice.password is the embedded laptop default; set a secret of your own"]
    if password == EXAMPLE_PASSWORD:
        return ["appservice.password is the published example password; set a secret of your own"]
    return []
