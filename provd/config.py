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
from .transport.address import parse_listen

#: The default instance password, for trying provd on a laptop. provd warns when it runs
#: with it; a real PBX App object must use a secret of its own.
DEFAULT_PASSWORD = "provd-demo-password"  # noqa: S105 - documented laptop default

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "console", "kv", "json")


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


@frozen(kw_only=True)
class StoreSettings:
    path: str = "provd.db"


@frozen(kw_only=True)
class LogSettings:
    level: str = "info"
    format: str = "auto"


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
    #: Sysclient product/version provd reports for the phones it represents.
    product: str = "provd"
    #: Devices service URL to use before (or without) a PBX telling it; normally empty.
    devices_url: str = ""


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
class ControlSettings:
    #: Unix socket for ``provd status`` / ``provd phones remove`` (empty = next to the db).
    socket: str = ""


_SECTIONS: dict[str, type] = {
    "appservice": AppServiceSettings,
    "phones": PhonesSettings,
    "store": StoreSettings,
    "log": LogSettings,
    "provisioning": ProvisioningSettings,
    "control": ControlSettings,
    "devices": DevicesSettings,
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
    devices: DevicesSettings = attrs.field(factory=DevicesSettings)
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
        """Load and validate a file. Raises :class:`ConfigError` (also for I/O and syntax)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def load(cls, path: str | None = None) -> Config:
        """``--config`` if given, else ``$PROVD_CONFIG``, else the embedded defaults."""
        path = path or os.environ.get("PROVD_CONFIG") or None
        return cls.from_toml(path) if path else cls()

    def validate(self) -> None:
        a = self.appservice
        if not a.password:
            raise ConfigError("appservice.password: must not be empty")
        if bool(a.tls_cert) != bool(a.tls_key):
            raise ConfigError("appservice.tls_cert/tls_key: give both or neither")
        if self.log.level not in LOG_LEVELS:
            raise ConfigError(f"log.level: must be one of {', '.join(LOG_LEVELS)}")
        if self.log.format not in LOG_FORMATS:
            raise ConfigError(f"log.format: must be one of {', '.join(LOG_FORMATS)}")
        p = self.provisioning
        for key in ("timeout", "handshake_timeout", "backoff_initial", "backoff_cap"):
            if getattr(p, key) <= 0:
                raise ConfigError(f"provisioning.{key}: must be positive")
        if p.max_handshakes < 1 or p.code_attempts < 1:
            raise ConfigError("provisioning.max_handshakes/code_attempts: must be at least 1")
        if not self.store.path:
            raise ConfigError("store.path: must not be empty")
        if self.devices.ca_file:
            from .transport.tls import TlsSetupError, client_context

            try:
                client_context(self.devices.ca_file, self.devices.verify)
            except TlsSetupError as exc:
                raise ConfigError(f"devices.ca_file: {exc}") from None

    @property
    def control_socket(self) -> str:
        return self.control.socket or str(Path(self.store.path).with_suffix(".sock"))
