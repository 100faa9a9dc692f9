"""Fixtures for key-store tests: a real SoftHSM2 token."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def require_tool(available: bool, what: str) -> None:
    """Skip when an external tool is missing, or fail if EAUTH_REQUIRE_INTEROP=1 (CI must run interop tests)."""
    if available:
        return
    if os.environ.get("EAUTH_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{what} is missing and EAUTH_REQUIRE_INTEROP=1")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def openssl() -> str:
    """The openssl command line tool."""
    path = shutil.which("openssl")
    require_tool(path is not None, "openssl")
    return path


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A fresh SoftHSM2 token: (module_path, token_label, user_pin).

    SoftHSM reads SOFTHSM2_CONF once, when the module is first initialized in the process, so there is
    one token per test session (per xdist worker); tests share it and must use their own key labels.
    """
    module = next((Path(p) for p in (os.environ.get("SOFTHSM2_MODULE"), *SOFTHSM_MODULES) if p and Path(p).is_file()), None)
    require_tool(shutil.which("softhsm2-util") is not None and module is not None, "SoftHSM2 (softhsm2-util and libsofthsm2.so)")
    assert module is not None
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label, pin = "eauth-test", "1234"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5678"],
        check=True, capture_output=True,
    )
    yield module, label, pin
    if previous is None:
        del os.environ["SOFTHSM2_CONF"]
    else:
        os.environ["SOFTHSM2_CONF"] = previous
