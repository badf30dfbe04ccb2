"""Rendering that degrades per item and refuses broken templates up front.

:class:`CheckedRenderer` is the :class:`~provd.phones.render.Renderer` the daemon serves
with. On top of it:

- A configuration item that breaks rendering (an odd value Devices sent) is left out of
  that phone's file with one warning naming the MAC and the item type, and the rest of the
  file is served: on a failure the file is rendered again without one item at a time, and
  the first version that renders is cached like any other (same phone, same revision).
- A file that can't be rendered at all raises :class:`RenderError` naming the template
  file; the failure is remembered per phone, file and revision, so a broken template
  costs one attempt per phone and file, not one per request.
- :meth:`CheckedRenderer.check` compiles every template and renders each file kind for a
  sample phone, posing as that vendor's phone. The daemon runs it before it starts or
  accepts a reload, so a broken operator template is refused instead of served.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from types import TracebackType

import structlog
from attrs import evolve
from jinja2 import TemplateSyntaxError

from provd.phones.examples import phone_request
from provd.phones.identify import (
    Identification,
    IdentifyError,
    Kind,
    Vendor,
    identify,
    parse_user_agent,
)
from provd.phones.model import PhoneData
from provd.phones.render import TEMPLATES, Rendered, Renderer

log = structlog.get_logger()

#: Failures and "item skipped" warnings remembered, at most.
_MAX_REMEMBERED = 10_000


class RenderError(Exception):
    """A file could not be rendered.

    Attributes:
        template: the template file (path) that failed, or its name.
        mac: the phone's MAC ("" for a model-common file).
        message: what went wrong (the template error, not the values rendered).
    """

    def __init__(self, template: str, mac: str, message: str) -> None:
        super().__init__(f"{template}: {message}")
        self.template = template
        self.mac = mac
        self.message = message


class TemplateCheckError(ValueError):
    """A template does not compile, or fails rendering the sample phone.

    Attributes:
        template: the template file (path), or the override directory.
        message: the error, with the line number when Jinja2 knows it.
    """

    def __init__(self, template: str, message: str) -> None:
        super().__init__(f"{template}: {message}")
        self.template = template
        self.message = message


class CheckedRenderer(Renderer):
    """A :class:`Renderer` that skips unusable items and names broken templates."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._failed: OrderedDict[Hashable, RenderError] = OrderedDict()
        self._skip_warned: OrderedDict[Hashable, None] = OrderedDict()

    def reload(self) -> None:
        with self._lock:
            self._failed.clear()
        super().reload()

    def render(
        self,
        phone: PhoneData | None,
        request: Identification,
        *,
        mask_secrets: bool = False,
    ) -> Rendered:
        """As :meth:`Renderer.render`, leaving out a configuration item that breaks it.

        Raises:
            RenderError: the file fails without any single item too (a broken template).
        """
        key = (
            phone.mac if phone is not None else "",
            phone.revision if phone is not None else -1,
            request,
            self.generation,
            mask_secrets,
        )
        with self._lock:
            failed = self._failed.get(key)
        if failed is not None:
            raise failed
        try:
            return super().render(phone, request, mask_secrets=mask_secrets)
        except Exception as first:  # a template bug or an odd item value: find out which
            error = first
        if phone is not None:
            for item in sorted(phone.config):
                rest = {k: v for k, v in phone.config.items() if k != item}
                try:
                    # Cached under this phone's key: later requests get it directly.
                    rendered = super().render(
                        evolve(phone, config=rest), request, mask_secrets=mask_secrets
                    )
                except Exception:  # noqa: S112 - not this item: try the next
                    continue
                self._warn_skipped(phone, item, error)
                return rendered
        failure = RenderError(self._template_of(error, request), request.mac or "", describe(error))
        with self._lock:
            self._failed[key] = failure
            while len(self._failed) > _MAX_REMEMBERED:
                self._failed.popitem(last=False)
        raise failure

    def _warn_skipped(self, phone: PhoneData, item: str, error: Exception) -> None:
        key = (phone.mac, phone.revision, item)
        with self._lock:
            if key in self._skip_warned:
                return
            self._skip_warned[key] = None
            while len(self._skip_warned) > _MAX_REMEMBERED:
                self._skip_warned.popitem(last=False)
        log.warning("phones.item_skipped", mac=phone.mac, item=item, error=describe(error))

    def _template_of(self, error: BaseException, request: Identification) -> str:
        """The template file that failed: from the error, else the file kind's template."""
        if isinstance(error, TemplateSyntaxError) and (error.filename or error.name):
            return str(error.filename or error.name)
        template = _template_frame(error.__traceback__)
        if template:
            return template
        entry = TEMPLATES.get((request.vendor, request.kind))
        if entry is None:
            return "-"
        try:
            return self._env.get_template(entry[0]).filename or entry[0]
        except Exception:  # the template itself doesn't load: its name will do
            return entry[0]

    def check(self) -> None:
        """Compile every template and render each file kind for a sample phone.

        Raises:
            TemplateCheckError: naming the template file and the error (with its line).
        """
        if self.templates is not None and not self.templates.is_dir():
            raise TemplateCheckError(str(self.templates), "not a directory")
        env = self._env
        for name in sorted(set(env.list_templates(filter_func=lambda n: n.endswith(".j2")))):
            try:
                env.get_template(name)
            except Exception as exc:  # syntax errors, unreadable files, ...
                path = str(getattr(exc, "filename", None) or name)
                raise TemplateCheckError(path, describe(exc)) from None
        phone = sample_phone()
        for vendor, kind in TEMPLATES:
            request = _sample_request(vendor, kind, phone.mac)
            for who in (phone, None) if kind is Kind.COMMON else (phone,):
                try:
                    Renderer.render(self, who, request)  # no item skipping: all must work
                except Exception as exc:  # the sample must render: anything else is broken
                    raise TemplateCheckError(
                        self._template_of(exc, request), describe(exc)
                    ) from None


def sample_phone() -> PhoneData:
    """A phone with every configuration item set, for :meth:`CheckedRenderer.check`."""
    return PhoneData(
        mac="001565000001",
        hwid="IP-HW-CHECK",
        usename="check",
        cn="Template Check",
        password="check-<&\"'-password",  # noqa: S106 - a sample, not a secret
        domain="example.com",
        dns="pbx.example.com",
        config={
            "PHONE": {"coder": "G722,OPUS-WB,G711A,G711u,G729"},
            "NTP": {"ntp1": "ntp1.example.com", "ntp2": "ntp2.example.com", "tz": "Europe/Berlin"},
            "MEDIA": {
                "stunServer": "stun.example.com:3478",
                "turnServer": "turn.example.com:3478",
                "turnUser": "turnuser",
                "turnPassword": "check-turn-password",
            },
            "TLS_PROFILE": {"profile": "Strict"},
        },
    )


def _sample_request(vendor: Vendor, kind: Kind, mac: str) -> Identification:
    """What that vendor's phone would ask for this kind of file (model and firmware set)."""
    example = phone_request(vendor, mac)
    try:
        ident = identify(example.path, example.user_agent)
    except IdentifyError:
        ident = None
    if ident is not None and (ident.vendor, ident.kind) == (vendor, kind):
        return ident
    ua = parse_user_agent(example.user_agent)
    return Identification(
        vendor=vendor,
        kind=kind,
        file=f"{mac}.cfg",
        mac=mac,
        per_phone=kind is not Kind.COMMON,
        model=ua.model if ua else None,
        firmware=ua.firmware if ua else None,
    )


def _template_frame(tb: TracebackType | None) -> str:
    """The innermost traceback frame running template code (Jinja2 maps it to the file)."""
    found = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = filename
        tb = tb.tb_next
    return found


def describe(error: BaseException) -> str:
    """``Type: message`` and, for syntax errors, the line."""
    if isinstance(error, TemplateSyntaxError):
        return f"line {error.lineno}: {error.message}"
    text = str(error).replace("\n", " ")[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
