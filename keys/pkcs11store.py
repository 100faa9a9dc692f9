"""The PKCS#11 key store: key pairs and secrets live on a token (an HSM; SoftHSM2 in tests).

Keys are generated on the token as sensitive, non-extractable objects and never leave it: ECDSA,
RSA, HMAC and AES-GCM all run inside the token. Key handles are found once per label and kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    MultipleTokensReturned,
    NoSuchToken,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
)
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from eauth.errors import AlreadyExists, KeyNotFound, KeyStoreError, KeyStoreLocked
from keys.base import KeyAlgorithm

# python-pkcs11 calls C_Initialize without CKF_OS_LOCKING_OK, which promises the module that one
# thread at a time calls it: SoftHSM then turns its own locking off and crashes on concurrent calls,
# even on separate sessions. So every call into a module, from any store in the process, holds this.
_MODULE_LOCK = threading.RLock()

_NONCE_BYTES = 12
_PRIVATE = {Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}

# What a label names, per kind of object: key pairs and secrets are separate namespaces, as in the file store.
_KINDS: dict[str, dict[Attribute, Any]] = {
    "private": {Attribute.CLASS: ObjectClass.PRIVATE_KEY},
    "public": {Attribute.CLASS: ObjectClass.PUBLIC_KEY},
    "aes": {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES},
    "hmac": {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET},
}


class _Token:
    """A logged-in token and the key objects found on it, shared by every store on it in this process.

    PKCS#11 login state belongs to the process, not to a session: a second login on the same token
    fails with "already logged in" without looking at the PIN, so the PIN that logged in is kept (as
    a hash) to check the PIN of any later store against it.
    """

    def __init__(self, module_path: Path, token_label: str, pin: str) -> None:
        self.name = f"token {token_label!r} in PKCS#11 module {module_path}"
        if not module_path.is_file():
            raise KeyStoreError(f"PKCS#11 module {module_path} not found")
        try:
            lib = pkcs11.lib(str(module_path))
        except Exception as exc:  # the loader raises plain RuntimeError/OSError for a bad library
            raise KeyStoreError(f"cannot load PKCS#11 module {module_path}: {exc}") from None
        try:
            token = lib.get_token(token_label=token_label)
        except NoSuchToken:
            raise KeyStoreError(f"no token labelled {token_label!r} in PKCS#11 module {module_path}") from None
        except MultipleTokensReturned:
            raise KeyStoreError(f"several tokens labelled {token_label!r} in PKCS#11 module {module_path}") from None
        try:
            self.session = token.open(rw=True, user_pin=pin)
        except (PinIncorrect, PinInvalid, PinLenRange):
            raise KeyStoreLocked(f"wrong PIN for {self.name}") from None
        except PinLocked:
            raise KeyStoreLocked(f"the user PIN of {self.name} is locked") from None
        except PKCS11Error as exc:
            raise KeyStoreError(f"cannot log in to {self.name}: {type(exc).__name__}") from None
        self._pin_hash = hashlib.sha256(pin.encode()).digest()
        self._found: dict[tuple[str, str], Any] = {}

    def check_pin(self, pin: str) -> None:
        if not hmac.compare_digest(hashlib.sha256(pin.encode()).digest(), self._pin_hash):
            raise KeyStoreLocked(f"wrong PIN for {self.name}")

    @contextmanager
    def calls(self) -> Iterator[_Token]:
        """Hold the module lock for a series of calls; token failures become KeyStoreError."""
        with _MODULE_LOCK:
            try:
                yield self
            except PKCS11Error as exc:
                raise KeyStoreError(f"{self.name}: {type(exc).__name__} {exc}".rstrip()) from None

    def search(self, kind: str, label: str) -> list[Any]:
        return list(self.session.get_objects({**_KINDS[kind], Attribute.LABEL: label}))

    def key(self, kind: str, label: str) -> Any:
        """The ``kind`` key under ``label``, searched on the token only the first time.

        If a creation race left two under one label, the lowest CKA_ID wins in every process.
        """
        found = self._found.get((kind, label))
        if found is None:
            objects = self.search(kind, label)
            if not objects:
                raise KeyNotFound(f"no key {label!r} on {self.name}")
            found = self._found[(kind, label)] = min(objects, key=lambda o: o[Attribute.ID])
        return found

    def remember(self, kind: str, label: str, obj: Any) -> None:
        self._found[(kind, label)] = obj

    def forget(self, kind: str, label: str) -> None:
        self._found.pop((kind, label), None)


_tokens: dict[tuple[Path, str], _Token] = {}


def _open_token(module_path: Path, token_label: str, pin: str) -> _Token:
    key = (module_path.resolve(), token_label)
    with _MODULE_LOCK:
        token = _tokens.get(key)
        if token is None:
            token = _tokens[key] = _Token(key[0], token_label, pin)
        else:
            token.check_pin(pin)
    return token


def _public_key(obj: Any) -> PublicKeyTypes:
    der = encode_rsa_public_key(obj) if obj.key_type == KeyType.RSA else encode_ec_public_key(obj)
    return load_der_public_key(der)


class Pkcs11Signer:
    """A key pair on the token; the public key is read once, the private key never leaves the token."""

    def __init__(self, token: _Token, label: str, public_key: PublicKeyTypes) -> None:
        self._token = token
        self.label = label
        self.public_key = public_key
        self.algorithm = KeyAlgorithm.of_public_key(public_key)

    def sign(self, data: bytes) -> bytes:
        with self._token.calls() as t:
            key = t.key("private", self.label)
            if self.algorithm.is_rsa:
                return key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
            # SoftHSM 2.6 lacks CKM_ECDSA_SHA256; hashing here and signing the digest is equivalent.
            raw = key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half]), int.from_bytes(raw[half:]))

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self.label!r}, {self.algorithm.value})"


class Pkcs11Secret:
    """A platform secret as two token keys under one label: a generic secret for HMAC and an AES-256 key."""

    def __init__(self, token: _Token, label: str) -> None:
        self._token = token
        self._label = label

    def mac(self, data: bytes) -> bytes:
        with self._token.calls() as t:
            return t.key("hmac", self._label).sign(data, mechanism=Mechanism.SHA256_HMAC)

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        with self._token.calls() as t:
            key = t.key("aes", self._label)
            param = GCMParams(nonce, associated_data)
            return nonce + key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=param)

    def decrypt(self, ciphertext: bytes, *, associated_data: bytes) -> bytes:
        """The plaintext, or cryptography's InvalidTag (as the file store) if the data or associated data differ."""
        param = GCMParams(ciphertext[:_NONCE_BYTES], associated_data)
        with self._token.calls() as t:
            key = t.key("aes", self._label)
            try:
                return key.decrypt(ciphertext[_NONCE_BYTES:], mechanism=Mechanism.AES_GCM, mechanism_param=param)
            except PKCS11Error:  # SoftHSM reports a failed tag check as CKR_GENERAL_ERROR
                raise InvalidTag() from None


class Pkcs11KeyStore:
    """Keys on a PKCS#11 token, found by CKA_LABEL; a drop-in replacement for the file store."""

    backend = "pkcs11"

    def __init__(self, module_path: Path, token_label: str, pin: str) -> None:
        self._token = _open_token(Path(module_path), token_label, pin)
        self._signers: dict[str, Pkcs11Signer] = {}
        self._secrets: dict[str, Pkcs11Secret] = {}

    def check(self) -> None:
        """Opening already logged in with the PIN; nothing more to check."""

    def has_key(self, label: str) -> bool:
        with self._token.calls() as t:
            return bool(t.search("private", label))

    def generate(self, label: str, algorithm: KeyAlgorithm) -> Pkcs11Signer:
        with self._token.calls() as t:
            if t.search("private", label):
                raise AlreadyExists(f"key {label!r} already exists on {self._token.name}")
            common: dict[str, Any] = {
                "id": secrets.token_bytes(16),
                "label": label,
                "store": True,
                "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
                "private_template": _PRIVATE,
            }
            if algorithm.is_rsa:
                public, private = t.session.generate_keypair(KeyType.RSA, algorithm.rsa_bits, **common)
            else:
                curve = {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}
                public, private = t.session.generate_keypair(KeyType.EC, public_template=curve, **common)
            t.remember("private", label, private)
            signer = Pkcs11Signer(self._token, label, _public_key(public))
        self._signers[label] = signer
        return signer

    def delete(self, label: str) -> None:
        with self._token.calls() as t:
            for kind in ("private", "public"):
                for obj in t.search(kind, label):
                    obj.destroy()
            t.forget("private", label)
        self._signers.pop(label, None)

    def signer(self, label: str) -> Pkcs11Signer:
        cached = self._signers.get(label)
        if cached is not None:
            return cached
        with self._token.calls() as t:
            private = t.key("private", label)
            pair = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label, Attribute.ID: private.id}
            publics = list(t.session.get_objects(pair))
            if not publics:
                raise KeyStoreError(f"key {label!r} on {self._token.name} has no public key object")
            signer = Pkcs11Signer(self._token, label, _public_key(publics[0]))
        self._signers[label] = signer
        return signer

    def secret(self, label: str) -> Pkcs11Secret:
        cached = self._secrets.get(label)
        if cached is not None:
            return cached
        with self._token.calls() as t:
            aes, mac = t.search("aes", label), t.search("hmac", label)
            if not (aes and mac):
                common = {"id": secrets.token_bytes(16), "label": label, "store": True, "template": _PRIVATE}
                if not aes:
                    flags = MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
                    t.session.generate_key(KeyType.AES, 256, capabilities=flags, **common)
                if not mac:
                    flags = MechanismFlag.SIGN | MechanismFlag.VERIFY
                    t.session.generate_key(KeyType.GENERIC_SECRET, 256, capabilities=flags, **common)
        secret = self._secrets[label] = Pkcs11Secret(self._token, label)
        return secret
