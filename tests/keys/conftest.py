"""Fixtures for key-store tests: a real SoftHSM2 token."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A fresh SoftHSM2 token: (module_path, token_label, user_pin).

    SoftHSM reads SOFTHSM2_CONF once, when the module is first initialized in the process, so there is
    one token per test session (per xdist worker); tests share it and must use their own key labels.
    """
    util = require_tool("softhsm2-util")
    candidates = (os.environ.get("SOFTHSM2_MODULE"), *SOFTHSM_MODULES)
    module = next((Path(p) for p in candidates if p and Path(p).is_file()), None)
    if module is None:
        pytest.fail("softhsm2-util is installed but libsofthsm2.so is not in a known place: set SOFTHSM2_MODULE")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label, pin = "eauth-test", "1234"
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5678"],
        check=True, capture_output=True,
    )
    yield module, label, pin
    if previous is None:
        del os.environ["SOFTHSM2_CONF"]
    else:
        os.environ["SOFTHSM2_CONF"] = previous
