"""Model families: where one vendor's models want different files or different codes.

A family is chosen from the model the request names (User-Agent, else file name). It selects
the template (Gigaset has three file formats) and per-family codes (Grandstream's Opus
vocoder code). Unknown models fall back to the vendor's most common family, or, where a
guess could switch on the wrong thing, to a family that leaves the setting out.

Sources (facts only):

=============  ==========  =================================================================
vendor         family      source
=============  ==========  =================================================================
Grandstream    gxp17xx     Grandstream GXP17xx firmware 1.0.1.x config template: Opus
                           vocoder code 125 (phones.md, corrections)
Grandstream    gxp21xx     Grandstream GXP21xx firmware 1.0.11.x config template: Opus
                           vocoder code 123 (phones.md, corrections)
Grandstream    other       no Opus code known for the model: Opus is left out of P57..P98
Gigaset        n510        ``<ProviderFrame>`` / ``BS_IP_Data1.*`` items, ``<MAC>.xml``
                           (wazo-provd-plugins ``wazo_gigaset/N510/templates/base.tpl``)
Gigaset        n720        ``<ProviderFrame>`` / ``BS_VOIP_Data.*`` items
                           (wazo-provd-plugins ``wazo_gigaset/N720/templates/base.tpl``)
Gigaset        nx70        N670/N870/N870E (and N610): ``<provisioning version="1.1"
                           productID="e2">`` with ``<nvm><param name=...>``, ``<mac>.xml``
                           lowercase (wazo-provd-plugins ``wazo_gigaset/Nx70_83_v2_62_1``)
=============  ==========  =================================================================
"""

from __future__ import annotations

import functools
import re

from provd.phones.identify import Vendor

#: Grandstream vocoder code for Opus per family (P57..P62, P46, P98 values).
GRANDSTREAM_OPUS: dict[str, int | None] = {"gxp17xx": 125, "gxp21xx": 123, "other": None}


@functools.lru_cache(maxsize=1024)
def family(vendor: Vendor, model: str | None, file: str = "") -> str:
    """The family of ``vendor``'s ``model`` (``""`` for vendors with one family).

    Args:
        vendor: the phone's vendor.
        model: model from the User-Agent or file name, or None when unknown.
        file: the requested file name, a hint when the model is unknown.
    """
    name = re.sub(r"[\s_-]+", "", (model or "").upper())
    if vendor is Vendor.GRANDSTREAM:
        if name.startswith("GXP17"):
            return "gxp17xx"
        if name.startswith("GXP21") or not name:
            # No model (``provd render`` without a fetch yet): the common desk family.
            return "gxp21xx"
        return "other"
    if vendor is Vendor.GIGASET:
        if re.match(r"N[68]\d0", name) or name.startswith("N610"):
            return "nx70"
        if name.startswith("N720"):
            return "n720"
        if name.startswith("N510"):
            return "n510"
        # Unknown model: Nx70 ask for a lowercase <mac>.xml, the older bases uppercase.
        stem = file.rsplit(".", 1)[0]
        if re.fullmatch(r"[0-9a-f]{12}", stem) and not stem.isdigit():
            return "nx70"
        return "n510"
    return ""
