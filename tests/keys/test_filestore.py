"""The embedded key store: encrypted at rest, refuses a wrong or missing passphrase, shared safely."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_private_key

from eauth.errors import AlreadyExists, KeyNotFound, KeyStoreLocked, NotInitialized
from eauth.settings import Settings
from keys.base import KeyAlgorithm, SoftwareSigner
from keys.filestore import FileKeyStore


@pytest.fixture
def store(tmp_path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys", "pass phrase", create=True)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_signatures_verify(store, algorithm):
    signer = store.generate(f"k-{algorithm.value}", algorithm)
    data = b"to be signed"
    signature = signer.sign(data)
    if algorithm.is_rsa:
        signer.public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        assert isinstance(signer.public_key, rsa.RSAPublicKey) and signer.public_key.key_size == algorithm.rsa_bits
    else:
        signer.public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    reopened = FileKeyStore(store.directory, "pass phrase").signer(f"k-{algorithm.value}")
    assert reopened.public_key.public_numbers() == signer.public_key.public_numbers()
    assert reopened.algorithm is algorithm
    assert isinstance(reopened, SoftwareSigner)


def test_no_private_key_in_clear_on_disk(store):
    store.generate("a", KeyAlgorithm.EC_P256)
    store.secret("s")
    for path in store.directory.iterdir():
        data = path.read_bytes()
        assert not re.search(rb"-----BEGIN (RSA |EC )?PRIVATE KEY-----", data)  # an unencrypted PEM key
        for loader in (lambda d: load_pem_private_key(d, None), lambda d: load_der_private_key(d, None)):
            with pytest.raises((ValueError, TypeError)):
                loader(data)
        if path.suffix == ".pem":
            assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert path.stat().st_mode & 0o077 == 0


def test_wrong_passphrase_refused_at_open(store):
    with pytest.raises(KeyStoreLocked, match="wrong key passphrase"):
        FileKeyStore(store.directory, "not the pass phrase")


def test_uninitialized_store_refused(tmp_path):
    with pytest.raises(NotInitialized, match="eauth init"):
        FileKeyStore(tmp_path / "nothing", "pass phrase")


@pytest.mark.parametrize(
    "env, message",
    [({}, "no key passphrase"), ({"key_passphrase_file": Path("/nonexistent/pass")}, "cannot read")],
)
def test_missing_passphrase_refused(env, message):
    with pytest.raises(KeyStoreLocked, match=message):
        Settings(_env_file=None, **env).key_store_passphrase()


def test_passphrase_from_file(tmp_path):
    file = tmp_path / "pass"
    file.write_text("from a file\n")
    assert Settings(_env_file=None, key_passphrase_file=file).key_store_passphrase() == "from a file"
    file.write_text("")
    with pytest.raises(KeyStoreLocked, match="empty"):
        Settings(_env_file=None, key_passphrase_file=file).key_store_passphrase()


def test_duplicate_and_missing_labels(store):
    store.generate("dup", KeyAlgorithm.EC_P256)
    with pytest.raises(AlreadyExists):
        store.generate("dup", KeyAlgorithm.EC_P256)
    with pytest.raises(KeyNotFound):
        store.signer("absent")
    assert store.has_key("dup") and not store.has_key("absent")


def test_concurrent_generation_makes_one_key(store):
    outcomes = []

    def attempt():
        try:
            outcomes.append(FileKeyStore(store.directory, "pass phrase").generate("race", KeyAlgorithm.EC_P256))
        except AlreadyExists:
            outcomes.append(None)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    assert store.signer("race").public_key.public_numbers() == winners[0].public_key.public_numbers()


def test_secret_stable_and_authenticated(store):
    secret = store.secret("pseudonyms")
    again = FileKeyStore(store.directory, "pass phrase").secret("pseudonyms")
    assert secret.mac(b"x") == again.mac(b"x") != store.secret("other").mac(b"x")
    ciphertext = secret.encrypt(b"11010519491231002X", associated_data=b"person:1")
    assert b"11010519491231002X" not in ciphertext
    assert again.decrypt(ciphertext, associated_data=b"person:1") == b"11010519491231002X"
    with pytest.raises(Exception):
        again.decrypt(ciphertext, associated_data=b"person:2")


def test_tampered_secret_file_refused(store):
    store.secret("s")
    path = store.directory / "s.secret"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(KeyStoreLocked):
        FileKeyStore(store.directory, "pass phrase").secret("s")


def test_delete(store):
    store.generate("gone", KeyAlgorithm.EC_P256)
    store.delete("gone")
    assert not store.has_key("gone")
    with pytest.raises(KeyNotFound):
        store.signer("gone")
    store.delete("gone")  # idempotent
