"""User-Agents, paths and the vendor decision."""

from __future__ import annotations

import pytest

from provd.phones import (
    Kind,
    MacMismatch,
    NotRecognised,
    Vendor,
    identify,
    parse_path,
    parse_user_agent,
    vendor_for_oui,
)

# Real User-Agent strings as phones send them (vendor docs, provisioning-server logs).
REAL_UAS = [
    (
        "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37",
        Vendor.YEALINK,
        "T46G",
        "28.72.0.1",
        "0015654aa937",
    ),
    (
        "Yealink SIP VP-T49G 51.80.0.10 00:15:65:9b:5a:44",
        Vendor.YEALINK,
        "T49G",
        "51.80.0.10",
        "0015659b5a44",
    ),
    (
        "Yealink W60B 77.81.0.35 80:5e:c0:09:ab:dc",
        Vendor.YEALINK,
        "W60B",
        "77.81.0.35",
        "805ec009abdc",
    ),
    ("Yealink-T46G 28.71.0.81 28.1.0.128.0.0.0", Vendor.YEALINK, "T46G", "28.71.0.81", None),
    (
        "yealink SIP-T28P 2.70.0.140 00:15:65:13:ae:0b",
        Vendor.YEALINK,
        "T28P",
        "2.70.0.140",
        "00156513ae0b",
    ),
    ("Yealink SIP-T46U 108.86.0.20", Vendor.YEALINK, "T46U", "108.86.0.20", None),
    (
        "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24 "
        "SXM:0 UXM:0)",
        Vendor.SNOM,
        "D785",
        "10.1.33.33",
        "000413922d24",
    ),
    (
        "Mozilla/4.0 (compatible; snom320-SIP 8.7.5.35 1.1.3-s)",
        Vendor.SNOM,
        "320",
        "8.7.5.35",
        None,
    ),
    (
        "Mozilla/4.0 (compatible; snom870-SIP 8.4.35 SPEAr300 SNOM 1.4)",
        Vendor.SNOM,
        "870",
        "8.4.35",
        None,
    ),
    (
        "Grandstream Model HW GXP2200 V2.2A SW 1.0.1.33 DevId 000b82462d97",
        Vendor.GRANDSTREAM,
        "GXP2200",
        "1.0.1.33",
        "000b82462d97",
    ),
    (
        "Grandstream Model HW GXP1405 SW 1.0.4.23 DevId 000b8240d55c",
        Vendor.GRANDSTREAM,
        "GXP1405",
        "1.0.4.23",
        "000b8240d55c",
    ),
    ("Grandstream GXP1400 1.0.4.13", Vendor.GRANDSTREAM, "GXP1400", "1.0.4.13", None),
    ("Fanvil X5U-V2 2.12.1 0c383e0a1b2c", Vendor.FANVIL, "X5U-V2", "2.12.1", "0c383e0a1b2c"),
    ("Fanvil X4U Pro 2.4.2 0c383e112233", Vendor.FANVIL, "X4U Pro", "2.4.2", "0c383e112233"),
    (
        "FileTransport PolycomVVX-VVX_410-UA/5.9.5.0614 Type/Application",
        Vendor.POLY,
        "VVX_410",
        "5.9.5.0614",
        None,
    ),
    (
        "FileTransport PolycomSoundPointIP-SPIP_335-UA/4.0.1.13681",
        Vendor.POLY,
        "SPIP_335",
        "4.0.1.13681",
        None,
    ),
    (
        "Gigaset N510 IP PRO/42.250.00.000.000;7C2F80D2E3F4",
        Vendor.GIGASET,
        "N510 IP PRO",
        "42.250.00.000.000",
        "7c2f80d2e3f4",
    ),
]


class TestUserAgent:
    @pytest.mark.parametrize(("ua", "vendor", "model", "firmware", "mac"), REAL_UAS)
    def test_real_user_agents(self, ua, vendor, model, firmware, mac):
        """Each real-world User-Agent yields vendor, model, firmware and normalised MAC."""
        info = parse_user_agent(ua)
        assert info is not None
        assert (info.vendor, info.model, info.firmware, info.mac) == (vendor, model, firmware, mac)

    @pytest.mark.parametrize(
        "ua", ["", "curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)", "python-httpx/0.28", None]
    )
    def test_non_phones(self, ua):
        """Browsers, tools and a missing header are no phone."""
        assert parse_user_agent(ua) is None

    def test_grandstream_zero_devid_is_no_mac(self):
        """A DevId of all zeros is treated as no MAC at all."""
        info = parse_user_agent("Grandstream Model HW GXP1450 SW 1.0.4.23 DevId 000000000000")
        assert info is not None and info.mac is None


class TestOui:
    @pytest.mark.parametrize(
        ("mac", "vendor"),
        [
            ("00:15:65:12:34:56", Vendor.YEALINK),
            ("805EC0123456", Vendor.YEALINK),
            ("000413abcdef", Vendor.SNOM),
            ("c0-74-ad-00-00-01", Vendor.GRANDSTREAM),
            ("0c383e000001", Vendor.FANVIL),
            ("0004f2000001", Vendor.POLY),
            ("7c2f80000001", Vendor.GIGASET),
        ],
    )
    def test_known_ouis(self, mac, vendor):
        """Known OUIs map to their vendor whatever the separators and case."""
        assert vendor_for_oui(mac) is vendor

    @pytest.mark.parametrize("mac", ["aabbcc000001", "not-a-mac", "", "0015651234"])
    def test_unknown_or_invalid(self, mac):
        """Unknown OUIs and malformed MACs give None."""
        assert vendor_for_oui(mac) is None


class TestPath:
    @pytest.mark.parametrize(
        ("path", "vendor", "kind", "mac"),
        [
            ("/y000000000028.cfg", Vendor.YEALINK, Kind.COMMON, None),
            ("/yealink/y000000000108.cfg", Vendor.YEALINK, Kind.COMMON, None),
            ("/snomD785.htm", Vendor.SNOM, Kind.COMMON, None),
            ("/snomD785-000413A1B2C3.htm", Vendor.SNOM, Kind.PHONE, "000413a1b2c3"),
            ("/Grandstream/cfg000b82112233.xml", Vendor.GRANDSTREAM, Kind.PHONE, "000b82112233"),
            ("/GRANDSTREAM/cfg000b82112233", Vendor.GRANDSTREAM, Kind.PHONE, "000b82112233"),
            ("/cfg000B82112233.xml", Vendor.GRANDSTREAM, Kind.PHONE, "000b82112233"),
            ("/f0X4hw1.100.cfg", Vendor.FANVIL, Kind.COMMON, None),
            ("/Fanvil/F0V00X300000.cfg", Vendor.FANVIL, Kind.COMMON, None),
            ("/000000000000.cfg", Vendor.POLY, Kind.MASTER, None),
            ("/common.cfg", Vendor.POLY, Kind.COMMON, None),
            ("/0004f2aabbcc-user.cfg", Vendor.POLY, Kind.USER, "0004f2aabbcc"),
        ],
    )
    def test_unique_shapes(self, path, vendor, kind, mac):
        """File names only one vendor asks for are recognised, in folders and any case."""
        request = parse_path(path)
        assert request is not None
        assert request.candidates == ((vendor, kind),)
        assert request.mac == mac

    def test_mac_cfg_is_ambiguous(self):
        """``<mac>.cfg`` fits Yealink, Fanvil and Poly until something else decides."""
        request = parse_path("/001565A1B2C3.cfg")
        assert request is not None
        assert [v for v, _ in request.candidates] == [Vendor.YEALINK, Vendor.FANVIL, Vendor.POLY]
        assert request.mac == "001565a1b2c3"

    def test_folder_narrows_candidates(self):
        """A vendor sub-folder picks that vendor among the candidates."""
        request = parse_path("/fanvil/001565a1b2c3.cfg")
        assert request is not None and request.candidates == ((Vendor.FANVIL, Kind.PHONE),)

    def test_model_hints(self):
        """Snom and Fanvil file names carry the model."""
        assert parse_path("/snomD785.htm").model == "D785"  # type: ignore[union-attr]
        assert parse_path("/f0X3shw1.100.cfg").model == "X3s"  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        "path",
        [
            "/../001565a1b2c3.cfg",
            "/yealink/../001565a1b2c3.cfg",
            "/./001565a1b2c3.cfg",
            "//001565a1b2c3.cfg",
            "/yealink//001565a1b2c3.cfg",
            "/etc/passwd",
            "/yealink\\001565a1b2c3.cfg",
            "/%2e%2e/001565a1b2c3.cfg",
            "/001565a1b2c3.cfg\x00.xml",
            "/other/001565a1b2c3.cfg",
            "/a/b/001565a1b2c3.cfg",
            "001565a1b2c3.cfg",
            "/grandstream/y000000000028.cfg",
            "/000000000000.xml",
            "/cfg000000000000.xml",
            "/001565a1b2c.cfg",
            "/001565a1b2c3.cfg.bak",
            "/index.html",
            "/",
            "",
        ],
    )
    def test_rejected(self, path):
        """Traversal, foreign folders and names no phone asks for are refused."""
        assert parse_path(path) is None


class TestIdentify:
    def test_yealink_by_user_agent(self):
        """``<mac>.cfg`` with a Yealink User-Agent is Yealink's per-phone file."""
        ident = identify("/001565a1b2c3.cfg", "Yealink SIP-T46G 28.72.0.1 00:15:65:a1:b2:c3")
        assert (ident.vendor, ident.kind, ident.mac, ident.per_phone) == (
            Vendor.YEALINK,
            Kind.PHONE,
            "001565a1b2c3",
            True,
        )
        assert (ident.model, ident.firmware) == ("T46G", "28.72.0.1")

    def test_fanvil_by_user_agent_despite_yealink_oui(self):
        """The User-Agent beats the OUI when both are present."""
        ident = identify("/001565a1b2c3.cfg", "Fanvil X4U 2.4.2")
        assert ident.vendor is Vendor.FANVIL

    def test_poly_without_mac_in_user_agent(self):
        """Poly sends no MAC in its User-Agent; the path's MAC identifies the phone."""
        ua = "FileTransport PolycomVVX-VVX_410-UA/5.9.5.0614 Type/Application"
        ident = identify("/0004f2a1b2c3.cfg", ua)
        assert (ident.vendor, ident.kind, ident.mac, ident.model) == (
            Vendor.POLY,
            Kind.MASTER,
            "0004f2a1b2c3",
            "VVX_410",
        )

    def test_oui_decides_without_user_agent(self):
        """With no User-Agent, the OUI tells Fanvil's ``<mac>.cfg`` apart."""
        ident = identify("/0c383e112233.cfg", None)
        assert (ident.vendor, ident.kind) == (Vendor.FANVIL, Kind.PHONE)

    def test_gigaset_vs_snom_xml_by_oui(self):
        """``<MAC>.xml`` is Gigaset's for a Gigaset OUI and Snom's for a Snom OUI."""
        assert identify("/7C2F80112233.xml", "").vendor is Vendor.GIGASET
        assert identify("/000413112233.xml", "").vendor is Vendor.SNOM

    def test_grandstream_without_devid(self):
        """A Grandstream sending no MAC is identified from the path alone."""
        ident = identify("/Grandstream/cfgc074ad112233.xml", "Grandstream GXP1400 1.0.4.13")
        assert (ident.vendor, ident.mac, ident.model) == (
            Vendor.GRANDSTREAM,
            "c074ad112233",
            "GXP1400",
        )

    def test_common_file_is_not_per_phone(self):
        """A model-common file needs no phone, even when the User-Agent carries a MAC."""
        ident = identify("/y000000000028.cfg", "Yealink SIP-T46G 28.72.0.1 00:15:65:a1:b2:c3")
        assert ident.per_phone is False and ident.mac == "001565a1b2c3"

    def test_mac_mismatch_refused(self):
        """A phone asking for another phone's file is refused with 403."""
        with pytest.raises(MacMismatch) as info:
            identify("/001565ffffff.cfg", "Yealink SIP-T46G 28.72.0.1 00:15:65:a1:b2:c3")
        assert info.value.status == 403

    def test_ambiguous_unknown_vendor_refused(self):
        """``<mac>.cfg`` with no User-Agent and an unknown OUI is refused with 404."""
        with pytest.raises(NotRecognised) as info:
            identify("/aabbcc112233.cfg", "")
        assert info.value.status == 404

    def test_unknown_path_refused(self):
        """A path that is no provisioning file is refused with 404."""
        with pytest.raises(NotRecognised):
            identify("/wp-login.php", "Mozilla/5.0")
