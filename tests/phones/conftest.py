"""Shared fixtures: one fixed phone with awkward values, and a renderer pinned to 2025."""

from __future__ import annotations

import pytest
import structlog

from provd.phones import PhoneData, Renderer

from .phones_fixtures import make_phone


@pytest.fixture
def phone() -> PhoneData:
    return make_phone()


@pytest.fixture
def renderer() -> Renderer:
    return Renderer("tls", year=2025)


@pytest.fixture(autouse=True)
def _reset_structlog():
    """Each test starts from structlog's default configuration."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
