"""`eauth serve` as a subprocess on a free localhost port, for the HTTP benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

UNLIMITED = {"EAUTH_RATE_LIMIT_PER_CLIENT_PER_MINUTE": "0", "EAUTH_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "0",
             "EAUTH_RATE_LIMIT_PER_HOLDER_PER_MINUTE": "0", "EAUTH_RATE_LIMIT_REVOCATION_PER_ADDRESS_PER_MINUTE": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(settings_env: dict[str, str], *, workers: int = 2) -> Iterator[str]:
    """Run `eauth serve --workers N` with ``settings_env``; yields its base URL once /healthz answers,
    and stops it afterwards. Rate limiting is off unless ``settings_env`` sets it: a benchmark is one
    client at thousands of requests a second (docs/limits.md)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=os.environ | UNLIMITED | settings_env | {"EAUTH_PUBLIC_BASE_URL": base},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"eauth serve did not answer at {base}")
        yield base
    finally:
        server.terminate()
        server.wait(10)
