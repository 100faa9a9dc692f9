"""Fixtures of the fuzz targets: the watchdog that bounds each call."""

from __future__ import annotations

import pytest

from tests.fuzz.harness import Watchdog


@pytest.fixture(scope="module")
def watchdog() -> Watchdog:
    return Watchdog()
