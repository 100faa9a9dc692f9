"""Test helpers: valid identity numbers made on demand, keys and CSRs, the app served on a local port."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ca.identifiers import gb11714_check, validate_citizen_id, validate_credit_code
from eauth.errors import InvalidIdentifier

PASSPHRASE = "correct horse battery staple"
_counter = itertools.count(1)


def _complete(body: str, alphabet: str, validate) -> str:
    for check in alphabet:
        try:
            return validate(body + check)
        except InvalidIdentifier:
            continue
    raise ValueError(f"no check character completes {body}")


def citizen_id(n: int | None = None) -> str:
    """A valid GB 11643 number, different for each ``n`` (or each call)."""
    n = next(_counter) if n is None else n
    return _complete(f"440305199001{(n // 28) % 12 + 1:02d}"[:12] + f"{n % 28 + 1:02d}{n % 1000:03d}", "0123456789X",
                     validate_citizen_id)


def credit_code(n: int | None = None) -> str:
    """A valid GB 32100 code (with a valid embedded GB 11714 code), different for each ``n``."""
    n = next(_counter) if n is None else n
    org = f"{n % 10**8:08d}"
    return _complete("91440300" + org + gb11714_check(org), "0123456789ABCDEFGHJKLMNPQRTUWXY", validate_credit_code)


def ec_csr(common_name: str = "holder", key=None, hash_algorithm=None) -> tuple[bytes, object]:
    """A PEM CSR and its key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hash_algorithm or hashes.SHA256())
    )
    return csr.public_bytes(Encoding.PEM), key


def assert_problem(response, status: int, code: str) -> dict:
    """The response is an RFC 9457 problem with ``status`` and the stable ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"].endswith("/" + code)
    assert body["title"] and body["detail"]
    return body


@contextmanager
def served(platform) -> Iterator[str]:
    """The app over ``platform`` served by uvicorn in a thread on a free local port; its base URL."""
    import uvicorn

    from api.http import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(platform=platform), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def eauth_serve(env: dict[str, str], *, workers: int = 1, cwd=None, log=None) -> Iterator[tuple[object, str]]:
    """``eauth serve`` as a process group of its own (its workers in their own processes), on a free
    port with ``env``: (the process, its base URL) once /healthz answers; stopped with SIGTERM, then
    SIGKILL. ``log``: a file for its stderr (read when it dies before answering)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    eauth = str(Path(sys.executable).with_name("eauth"))
    stderr = open(log, "a") if log else subprocess.DEVNULL
    process = subprocess.Popen([eauth, "serve", "--port", str(port), "--workers", str(workers)], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, Path(log).read_text() if log else "eauth serve exited"
            assert time.monotonic() < deadline, "eauth serve did not start"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield process, url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log:
            stderr.close()
