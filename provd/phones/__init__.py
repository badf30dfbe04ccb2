"""The phone-facing side of provd: identify phones, render their files, serve them."""

from provd.phones.account import SipAccount
from provd.phones.codecs import parse_coders
from provd.phones.fetch import FetchRecord, FetchRecorder
from provd.phones.identify import (
    FileRequest,
    Identification,
    IdentifyError,
    Kind,
    MacMismatch,
    NotRecognised,
    UserAgentInfo,
    Vendor,
    identify,
    parse_path,
    parse_user_agent,
    vendor_for_oui,
)
from provd.phones.model import PhoneData
from provd.phones.render import Rendered, Renderer
from provd.phones.robust import CheckedRenderer, RenderError, TemplateCheckError
from provd.phones.server import PhonesApp, serve_phones
from provd.phones.settings import PhonesSettings
from provd.phones.timezones import ZoneRules, zone_rules

__all__ = [
    "CheckedRenderer",
    "FetchRecord",
    "FetchRecorder",
    "FileRequest",
    "Identification",
    "IdentifyError",
    "Kind",
    "MacMismatch",
    "NotRecognised",
    "PhoneData",
    "PhonesApp",
    "PhonesSettings",
    "RenderError",
    "Rendered",
    "Renderer",
    "SipAccount",
    "TemplateCheckError",
    "UserAgentInfo",
    "Vendor",
    "ZoneRules",
    "identify",
    "parse_coders",
    "parse_path",
    "parse_user_agent",
    "serve_phones",
    "vendor_for_oui",
    "zone_rules",
]
