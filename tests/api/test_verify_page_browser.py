"""The public verify page in a real browser: headless Chromium renders it at a phone's width, and the
screenshot shows the status in its colour. (The page has no script, and its Content-Security-Policy
would block one.)"""

from __future__ import annotations

import subprocess

import pytest
from PIL import Image

from tests.api.test_verify_qr import issued, token_of
from tests.helpers import served
from tests.conftest import require_seal_font, require_tool

GREEN, RED = (0x1B, 0x7F, 0x3B), (0xB0, 0x00, 0x20)


@pytest.fixture(scope="module")
def server(platform):
    """The app on a free local port, as a browser reaches it."""
    with served(platform) as url:
        yield url


def screenshot(url: str, path, width: int = 390, height: int = 844) -> Image.Image:
    chromium = require_tool("chromium")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={path.parent / 'profile'}",
         f"--window-size={width},{height}", f"--screenshot={path}", url],
        capture_output=True, text=True, timeout=60,
    )
    assert path.exists(), [line for line in result.stderr.splitlines() if "dbus" not in line][-8:]
    return Image.open(path).convert("RGB")


def share(image: Image.Image, colour: tuple[int, int, int]) -> float:
    """The fraction of the picture's pixels within a small distance of ``colour``."""
    histogram = image.getcolors(maxcolors=image.width * image.height)
    near = sum(count for count, pixel in histogram if sum(abs(a - b) for a, b in zip(pixel, colour)) < 30)
    return near / (image.width * image.height)


def test_valid_license_page_on_a_phone(api, licensing, server, tmp_path):
    require_seal_font()
    image = screenshot(f"{server}/v/{token_of(issued(api, licensing))}", tmp_path / "valid.png")
    assert image.size == (390, 844)
    assert share(image, GREEN) > 0.02, "the green 'valid' banner is not on screen"
    assert share(image, RED) == 0


def test_invalid_token_page_is_red(server, tmp_path):
    image = screenshot(f"{server}/v/not-a-token", tmp_path / "invalid.png")
    assert share(image, RED) > 0.02 and share(image, GREEN) == 0
