"""The embedded key store: encrypted PKCS#8 files under ``<data dir>/keys``.

Nothing is written in plain text: private keys are PKCS#8 PEM encrypted with the passphrase
(PBES2, AES-256-CBC), symmetric secrets are AES-256-GCM-wrapped with a key derived from it by scrypt.
``keystore.json`` holds the scrypt salt and a verifier, so a wrong passphrase is refused at open
instead of surfacing later as a failed decryption.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eauth.errors import AlreadyExists, KeyNotFound, KeyStoreError, KeyStoreLocked, NotInitialized
from keys.base import KeyAlgorithm, SoftwareKeySigner

_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _check_label(label: str) -> None:
    if not label or not set(label) <= _LABEL_CHARS or label.startswith("."):
        raise ValueError(f"bad key label {label!r}")


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600; AlreadyExists if another writer got there first."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise AlreadyExists(f"{path.name} already exists") from None
    finally:
        tmp.unlink(missing_ok=True)


class FileSecret:
    """A 32-byte secret held in memory after unwrapping."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._aead = AESGCM(key)

    def mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, *, associated_data: bytes) -> bytes:
        return self._aead.decrypt(ciphertext[:12], ciphertext[12:], associated_data)


class FileKeyStore:
    """Encrypted key files in one directory; safe for several processes sharing the directory."""

    backend = "file"

    def __init__(self, directory: Path, passphrase: str, *, create: bool = False) -> None:
        self.directory = directory
        self._passphrase = passphrase.encode()
        self._signers: dict[str, SoftwareKeySigner] = {}
        self._secrets: dict[str, FileSecret] = {}
        self._lock = threading.Lock()
        self._wrap_key = self._open(create)

    def _open(self, create: bool) -> bytes:
        meta_path = self.directory / "keystore.json"
        if not meta_path.exists():
            if not create:
                raise NotInitialized(f"no key store at {self.directory} (run `eauth init`)")
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            salt = secrets.token_bytes(16)
            derived = self._derive(salt)
            meta = {"format": 1, "kdf": "scrypt", **_SCRYPT, "salt": salt.hex(), "verifier": self._verifier(derived)}
            try:
                write_new_file(meta_path, json.dumps(meta, indent=1).encode())
            except AlreadyExists:
                pass  # another process initialized it at the same moment: verify against theirs
            else:
                return derived[32:]
        try:
            meta = json.loads(meta_path.read_text())
            derived = self._derive(bytes.fromhex(meta["salt"]), n=meta["n"], r=meta["r"], p=meta["p"])
        except (OSError, ValueError, KeyError) as exc:
            raise KeyStoreError(f"key store metadata {meta_path} unreadable: {exc}") from None
        if not hmac.compare_digest(self._verifier(derived), meta["verifier"]):
            raise KeyStoreLocked(f"wrong key passphrase for the key store at {self.directory}")
        return derived[32:]

    def _derive(self, salt: bytes, **params: int) -> bytes:
        p = {**_SCRYPT, **params}
        return hashlib.scrypt(self._passphrase, salt=salt, maxmem=2**26, dklen=64, **p)

    @staticmethod
    def _verifier(derived: bytes) -> str:
        return hmac.new(derived[:32], b"eauth key store verifier", hashlib.sha256).hexdigest()

    def check(self) -> None:
        """Opening already verified the passphrase; nothing more to check."""

    def _key_path(self, label: str) -> Path:
        _check_label(label)
        return self.directory / f"{label}.key.pem"

    def has_key(self, label: str) -> bool:
        return self._key_path(label).exists()

    def generate(self, label: str, algorithm: KeyAlgorithm) -> SoftwareKeySigner:
        key = algorithm.generate_software_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        write_new_file(self._key_path(label), pem)
        signer = SoftwareKeySigner(label, algorithm, key)
        with self._lock:
            self._signers[label] = signer
        return signer

    def delete(self, label: str) -> None:
        self._key_path(label).unlink(missing_ok=True)
        with self._lock:
            self._signers.pop(label, None)

    def signer(self, label: str) -> SoftwareKeySigner:
        with self._lock:
            cached = self._signers.get(label)
        if cached is not None:
            return cached
        path = self._key_path(label)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no key {label!r} in {self.directory}") from None
        try:
            key = serialization.load_pem_private_key(pem, self._passphrase)
        except ValueError:
            raise KeyStoreLocked(f"key {label!r} does not decrypt with the key passphrase") from None
        signer = SoftwareKeySigner(label, KeyAlgorithm.of_public_key(key.public_key()), key)
        with self._lock:
            self._signers[label] = signer
        return signer

    def secret(self, label: str) -> FileSecret:
        with self._lock:
            cached = self._secrets.get(label)
        if cached is not None:
            return cached
        _check_label(label)
        path = self.directory / f"{label}.secret"
        aead = AESGCM(self._wrap_key)
        if not path.exists():
            nonce = secrets.token_bytes(12)
            wrapped = nonce + aead.encrypt(nonce, secrets.token_bytes(32), label.encode())
            try:
                write_new_file(path, wrapped)
            except AlreadyExists:
                pass  # created concurrently: use the winner's
        wrapped = path.read_bytes()
        try:
            secret = FileSecret(aead.decrypt(wrapped[:12], wrapped[12:], label.encode()))
        except Exception:
            raise KeyStoreLocked(f"secret {label!r} does not unwrap with the key passphrase") from None
        with self._lock:
            self._secrets[label] = secret
        return secret
