"""The key-store interface: signers and secrets that do not care where the key lives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from eauth.errors import UnsupportedAlgorithm


class KeyAlgorithm(Enum):
    """Key types the platform makes and signs with."""

    EC_P256 = "ec-p256"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"

    @classmethod
    def parse(cls, value: str) -> KeyAlgorithm:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(a.value for a in cls)
            raise UnsupportedAlgorithm(f"unknown key algorithm {value!r}; use one of {names}") from None

    @property
    def is_rsa(self) -> bool:
        return self is not KeyAlgorithm.EC_P256

    @property
    def rsa_bits(self) -> int:
        return {KeyAlgorithm.RSA_2048: 2048, KeyAlgorithm.RSA_3072: 3072}[self]

    def generate_software_key(self) -> PrivateKeyTypes:
        """A fresh in-memory private key of this type."""
        if self.is_rsa:
            return rsa.generate_private_key(public_exponent=65537, key_size=self.rsa_bits)
        return ec.generate_private_key(ec.SECP256R1())

    @classmethod
    def of_public_key(cls, key: PublicKeyTypes) -> KeyAlgorithm:
        """The algorithm of a public key, or UnsupportedAlgorithm."""
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return cls.EC_P256
        if isinstance(key, rsa.RSAPublicKey) and key.key_size in (2048, 3072):
            return {2048: cls.RSA_2048, 3072: cls.RSA_3072}[key.key_size]
        raise UnsupportedAlgorithm(f"unsupported key: {type(key).__name__}")


@runtime_checkable
class Signer(Protocol):
    """A private key that can sign, wherever it lives.

    ``sign`` returns the signature in the X.509/CMS encoding: DER ``ECDSA-Sig-Value`` for EC keys,
    PKCS#1 v1.5 for RSA keys, always over SHA-256 of ``data``.
    """

    @property
    def label(self) -> str: ...

    @property
    def algorithm(self) -> KeyAlgorithm: ...

    @property
    def public_key(self) -> PublicKeyTypes: ...

    def sign(self, data: bytes) -> bytes: ...


@runtime_checkable
class SoftwareSigner(Signer, Protocol):
    """A signer whose key is loaded in this process: callers may hand the key to cryptography."""

    @property
    def private_key(self) -> PrivateKeyTypes: ...


class SecretKey(Protocol):
    """A symmetric platform secret: keyed hashing (pseudonyms, blind indexes) and authenticated encryption."""

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data``."""
        ...

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes, *, associated_data: bytes) -> bytes: ...


class KeyStore(Protocol):
    """Where the platform's private keys and secrets live."""

    backend: str

    def generate(self, label: str, algorithm: KeyAlgorithm) -> Signer:
        """Create and persist a key pair under ``label`` (AlreadyExists if there is one)."""
        ...

    def signer(self, label: str) -> Signer:
        """The key pair under ``label`` (KeyNotFound if there is none)."""
        ...

    def has_key(self, label: str) -> bool: ...

    def delete(self, label: str) -> None:
        """Destroy the key pair under ``label`` (no error if there is none): undoes a ``generate`` whose
        certificate was never issued."""
        ...

    def secret(self, label: str) -> SecretKey:
        """The symmetric secret under ``label``, created on first use."""
        ...

    def check(self) -> None:
        """Raise KeyStoreLocked/KeyStoreError unless the store opens with the given passphrase or PIN."""
        ...


@dataclass(frozen=True, slots=True)
class SoftwareKeySigner:
    """A signer over an in-memory cryptography key (file backend, or a freshly made subject key)."""

    label: str
    algorithm: KeyAlgorithm
    private_key: PrivateKeyTypes

    @property
    def public_key(self) -> PublicKeyTypes:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        if self.algorithm.is_rsa:
            return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
