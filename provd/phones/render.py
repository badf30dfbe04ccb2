"""Render phone files from Jinja2 templates, with a cache sized for boot storms.

Templates are packaged files, one per vendor and file kind
(``templates/<vendor>/<kind>.<ext>.j2``); an operator directory, when configured, is
searched first so any of them can be overridden by name. XML templates are autoescaped,
so a password like ``<&"'`` survives; every value also has CR/LF replaced, so nothing a
user typed can add a line to a ``key = value`` file.

Rendered bytes are cached by (MAC, vendor, kind, file name, ``PhoneData.revision``,
template generation, masking, year): a revision bump re-renders one phone, :meth:`reload`
(on SIGHUP) bumps the generation and so re-renders everything with the edited templates.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from attrs import frozen
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined

from provd.phones import context, families
from provd.phones.identify import Identification, Kind, Vendor
from provd.phones.keys import KeySource
from provd.phones.model import PhoneData
from provd.phones.pbx import PbxDirectory
from provd.phones.settings import PhonesSettings

log = structlog.get_logger()

_TEXT = "text/plain; charset=utf-8"
_XML = "application/xml; charset=utf-8"

#: (vendor, kind) -> (template name, content type).
TEMPLATES: dict[tuple[Vendor, Kind], tuple[str, str]] = {
    (Vendor.YEALINK, Kind.COMMON): ("yealink/common.cfg.j2", _TEXT),
    (Vendor.YEALINK, Kind.PHONE): ("yealink/phone.cfg.j2", _TEXT),
    (Vendor.SNOM, Kind.COMMON): ("snom/common.htm.j2", _XML),
    (Vendor.SNOM, Kind.PHONE): ("snom/phone.xml.j2", _XML),
    (Vendor.GRANDSTREAM, Kind.PHONE): ("grandstream/phone.xml.j2", _XML),
    (Vendor.FANVIL, Kind.COMMON): ("fanvil/common.cfg.j2", _TEXT),
    (Vendor.FANVIL, Kind.PHONE): ("fanvil/phone.cfg.j2", _TEXT),
    (Vendor.POLY, Kind.MASTER): ("poly/master.cfg.j2", _XML),
    (Vendor.POLY, Kind.COMMON): ("poly/common.cfg.j2", _XML),
    (Vendor.POLY, Kind.USER): ("poly/user.cfg.j2", _XML),
    (Vendor.GIGASET, Kind.PHONE): ("gigaset/phone.xml.j2", _XML),
}

#: (vendor, kind, family) -> (template name, content type), consulted before TEMPLATES for
#: vendors whose model families want different files (provd/phones/families.py).
FAMILY_TEMPLATES: dict[tuple[Vendor, Kind, str], tuple[str, str]] = {
    (Vendor.GIGASET, Kind.PHONE, "nx70"): ("gigaset/nx70.xml.j2", _XML),
    (Vendor.GIGASET, Kind.PHONE, "n720"): ("gigaset/n720.xml.j2", _XML),
}

_XML_VENDORS = ("snom/", "grandstream/", "poly/", "gigaset/")

DEFAULT_CACHE_SIZE = 4096


@frozen
class Rendered:
    """A rendered file: the bytes to send and their content type."""

    content: bytes
    content_type: str


def _autoescape(name: str | None) -> bool:
    return bool(name) and (
        name.startswith(_XML_VENDORS) or name.endswith((".xml.j2", ".htm.j2"))  # type: ignore[union-attr]
    )


def _one_line(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and ("\r" in value or "\n" in value):
        return value.replace("\r", " ").replace("\n", " ")
    return value


class Renderer:
    """Renders phone files for one SIP transport choice.

    Args:
        transport: ``"tls"`` or ``"tcp"`` for SIP account 1.
        templates: operator override directory, searched before the packaged templates.
        cache_size: most rendered files kept (LRU).
        year: fix the year time-zone rules are derived for (tests); default: the current one.
    """

    def __init__(
        self,
        transport: str = "tls",
        templates: str | Path | None = None,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        year: int | None = None,
        settings: PhonesSettings | None = None,
        key_source: KeySource | None = None,
        pbx: PbxDirectory | None = None,
    ) -> None:
        if transport not in ("tls", "tcp"):
            raise ValueError(f"transport must be 'tls' or 'tcp', not {transport!r}")
        self.transport = transport
        self.settings = settings if settings is not None else PhonesSettings()
        self.key_source = key_source
        #: The PBX's node info and favourites (None: none in the files). A change must come
        #: with a revision bump of the phones it affects: the cache keys on the revision.
        self.pbx = pbx
        self.templates = Path(templates) if templates else None
        self.generation = 0
        self._year = year
        self._cache_size = cache_size
        self._cache: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._lock = threading.Lock()
        self._env = self._environment()

    def _environment(self) -> Environment:
        loaders: list[Any] = []
        if self.templates is not None:
            loaders.append(FileSystemLoader(str(self.templates)))
        loaders.append(PackageLoader("provd.phones", "templates"))
        return Environment(
            loader=ChoiceLoader(loaders),
            autoescape=_autoescape,  # noqa: S701 - on for every XML template, by name
            undefined=StrictUndefined,
            finalize=_one_line,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    def reload(self) -> None:
        """Forget cached output and templates so edited override templates take effect."""
        with self._lock:
            self.generation += 1
            self._cache.clear()
            self._env = self._environment()
        log.info("phones.templates_reloaded", generation=self.generation)

    def render(
        self,
        phone: PhoneData | None,
        request: Identification,
        *,
        mask_secrets: bool = False,
    ) -> Rendered:
        """Render the file ``request`` names, for ``phone``.

        Args:
            phone: the phone; may be None for model-common files.
            request: what was asked for (from :func:`provd.phones.identify.identify`).
            mask_secrets: replace every secret with ``********`` (for the operator CLI).

        Returns:
            The rendered bytes and their content type.

        Raises:
            ValueError: no template for this vendor and kind, or a per-phone file without
                ``phone``.
            jinja2.TemplateError: an (override) template is broken.
        """
        family = families.family(request.vendor, request.model, request.file)
        entry = FAMILY_TEMPLATES.get((request.vendor, request.kind, family)) or TEMPLATES.get(
            (request.vendor, request.kind)
        )
        if entry is None:
            raise ValueError(f"no template for {request.vendor} {request.kind}")
        if phone is None and request.per_phone:
            raise ValueError(f"{request.file} is per-phone: a PhoneData is needed")
        name, content_type = entry
        year = self._year or datetime.now(UTC).year
        key = (
            phone.mac if phone is not None else "",
            request.vendor,
            request.kind,
            request.file,
            family,
            request.model,
            phone.revision if phone is not None else -1,
            self.generation,
            mask_secrets,
            year,
        )
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            env = self._env
        context = self._context(phone, request, mask_secrets=mask_secrets, year=year, family=family)
        text = self._render_uncached(env, name, context)
        rendered = Rendered(text.encode("utf-8"), content_type)
        with self._lock:
            self._cache[key] = rendered
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return rendered

    def _render_uncached(self, env: Environment, name: str, context: dict[str, Any]) -> str:
        return env.get_template(name).render(context)

    def _context(
        self,
        phone: PhoneData | None,
        request: Identification,
        *,
        mask_secrets: bool,
        year: int,
        family: str = "",
    ) -> dict[str, Any]:
        return self.explain(phone, request, mask_secrets=mask_secrets, year=year, family=family)[0]

    def explain(
        self,
        phone: PhoneData | None,
        request: Identification,
        *,
        mask_secrets: bool = True,
        year: int | None = None,
        family: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The template context for ``request`` and the source of each non-trivial value."""
        if family is None:
            family = families.family(request.vendor, request.model, request.file)
        if phone is None:
            return {"file": request.file, "mac": request.mac or "", "family": family}, {}
        return context.build(
            phone,
            request,
            transport=self.transport,
            settings=self.settings,
            family=family,
            mask_secrets=mask_secrets,
            year=year or self._year or datetime.now(UTC).year,
            key_source=self.key_source,
            pbx=self.pbx,
        )
