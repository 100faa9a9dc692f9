"""The PKCS#11 key store against a real SoftHSM2 token."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from eauth.errors import AlreadyExists, KeyNotFound, KeyStoreError, KeyStoreLocked
from keys.base import KeyAlgorithm, Signer, SoftwareSigner
from keys.pkcs11store import Pkcs11KeyStore
from keys.x509 import sign_certificate
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def store(softhsm_token) -> Pkcs11KeyStore:
    return Pkcs11KeyStore(*softhsm_token)


@pytest.fixture(scope="module")
def ec_signer(store):
    return store.generate(f"ec-{uuid.uuid4().hex[:8]}", KeyAlgorithm.EC_P256)


@pytest.fixture(scope="module")
def rsa_signer(store):
    return store.generate(f"rsa-{uuid.uuid4().hex[:8]}", KeyAlgorithm.RSA_2048)


def verify(signer: Signer, signature: bytes, data: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is ``signer``'s over ``data`` in the X.509 encoding."""
    if signer.algorithm.is_rsa:
        signer.public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        signer.public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def self_signed(signer: Signer) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Test Root {signer.label}")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer.public_key), critical=False)
    )
    return sign_certificate(builder, signer)


@pytest.mark.parametrize("signer_fixture", ["ec_signer", "rsa_signer"])
def test_signatures_verify_with_the_public_key(request, signer_fixture):
    signer = request.getfixturevalue(signer_fixture)
    assert isinstance(signer, Signer) and not isinstance(signer, SoftwareSigner)
    assert not hasattr(signer, "private_key")
    data = b"to be signed" * 100
    verify(signer, signer.sign(data), data)


def test_signer_is_found_again_by_label(store, ec_signer, rsa_signer, softhsm_token):
    other = Pkcs11KeyStore(*softhsm_token)  # a fresh store: nothing cached
    for original in (ec_signer, rsa_signer):
        found = other.signer(original.label)
        assert found.algorithm is original.algorithm
        assert found.public_key == original.public_key
        verify(original, found.sign(b"x"), b"x")
    assert other.has_key(ec_signer.label)
    assert not other.has_key("no-such-key")


def test_rsa_3072(store):
    signer = store.generate(f"rsa3-{uuid.uuid4().hex[:8]}", KeyAlgorithm.RSA_3072)
    assert signer.public_key.key_size == 3072
    verify(signer, signer.sign(b"data"), b"data")


@pytest.mark.parametrize("signer_fixture", ["ec_signer", "rsa_signer"])
def test_certificate_signed_on_the_token_verifies(request, signer_fixture, tmp_path):
    signer = request.getfixturevalue(signer_fixture)
    cert = self_signed(signer)
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == signer.public_key


    openssl = require_tool("openssl")
    pem = tmp_path / "root.pem"
    pem.write_bytes(cert.public_bytes(Encoding.PEM))
    at = str(int((NOW + dt.timedelta(days=1)).timestamp()))
    result = subprocess.run(
        [openssl, "verify", "-attime", at, "-CAfile", pem, pem], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrong_pin_is_refused(softhsm_token):
    module, label, _ = softhsm_token
    with pytest.raises(KeyStoreLocked, match="wrong PIN"):
        Pkcs11KeyStore(module, label, "0000")


def test_unknown_token_or_module(softhsm_token, tmp_path):
    module, _, pin = softhsm_token
    with pytest.raises(KeyStoreError, match="no token labelled 'nope'") as info:
        Pkcs11KeyStore(module, "nope", pin)
    assert not isinstance(info.value, KeyStoreLocked)
    with pytest.raises(KeyStoreError, match="not found"):
        Pkcs11KeyStore(tmp_path / "missing.so", "eauth-test", pin)
    bogus = tmp_path / "bogus.so"
    bogus.write_bytes(b"not a library")
    with pytest.raises(KeyStoreError, match="cannot load PKCS#11 module"):
        Pkcs11KeyStore(bogus, "eauth-test", pin)


def test_duplicate_and_missing_labels(store, ec_signer):
    with pytest.raises(AlreadyExists):
        store.generate(ec_signer.label, KeyAlgorithm.EC_P256)
    with pytest.raises(AlreadyExists):
        store.generate(ec_signer.label, KeyAlgorithm.RSA_2048)
    with pytest.raises(KeyNotFound):
        store.signer("absent-key")


def test_secret_is_stable_and_encrypts_with_associated_data(store, softhsm_token):
    label = f"secret-{uuid.uuid4().hex[:8]}"
    first = store.secret(label)
    second = Pkcs11KeyStore(*softhsm_token).secret(label)
    assert first.mac(b"110101199003077777") == second.mac(b"110101199003077777")
    assert len(first.mac(b"a")) == 32 and first.mac(b"a") != first.mac(b"b")
    assert store.secret(f"{label}-other").mac(b"a") != first.mac(b"a")

    sealed = first.encrypt(b"citizen record", associated_data=b"row 7")
    assert len(sealed) == 12 + len(b"citizen record") + 16
    assert second.decrypt(sealed, associated_data=b"row 7") == b"citizen record"
    assert first.encrypt(b"citizen record", associated_data=b"row 7") != sealed  # fresh nonce
    with pytest.raises(InvalidTag):
        first.decrypt(sealed, associated_data=b"row 8")
    with pytest.raises(InvalidTag):
        first.decrypt(sealed[:-1] + bytes([sealed[-1] ^ 1]), associated_data=b"row 7")
    assert first.decrypt(sealed, associated_data=b"row 7") == b"citizen record"  # sessions survive a failure


def test_a_new_process_checks_the_pin_and_finds_the_same_secret(store, softhsm_token):
    """In this process the token is already logged in, so the PIN check on a real C_Login runs in another."""
    module, label, pin = softhsm_token
    expected = store.secret("cross-process").mac(b"data").hex()
    script = textwrap.dedent(f"""
        from eauth.errors import KeyStoreLocked
        from keys.pkcs11store import Pkcs11KeyStore
        try:
            Pkcs11KeyStore({str(module)!r}, {label!r}, "0000")
        except KeyStoreLocked as exc:
            print("locked:", exc)
        print(Pkcs11KeyStore({str(module)!r}, {label!r}, {pin!r}).secret("cross-process").mac(b"data").hex())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=os.environ)
    assert result.returncode == 0, result.stderr
    locked, mac = result.stdout.splitlines()
    assert locked == f"locked: wrong PIN for token {label!r} in PKCS#11 module {module.resolve()}"
    assert mac == expected


def test_concurrent_signatures_all_verify(ec_signer):
    def work(thread: int) -> list[tuple[bytes, bytes]]:
        return [(data, ec_signer.sign(data)) for data in (f"{thread}:{i}".encode() for i in range(50))]

    with ThreadPoolExecutor(8) as pool:
        results = [pair for batch in pool.map(work, range(8)) for pair in batch]
    assert len(results) == 400
    for data, signature in results:
        verify(ec_signer, signature, data)


def test_delete_destroys_both_halves(store):
    store.generate("to-delete", KeyAlgorithm.EC_P256)
    store.delete("to-delete")
    assert not store.has_key("to-delete")
    with pytest.raises(KeyNotFound):
        store.signer("to-delete")
    store.generate("to-delete", KeyAlgorithm.EC_P256)  # the label is free again: no public half left over
