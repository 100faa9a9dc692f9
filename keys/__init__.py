"""Private keys and platform secrets, behind one interface whatever the backend."""

from keys.base import KeyAlgorithm, KeyStore, SecretKey, Signer, SoftwareKeySigner, SoftwareSigner

__all__ = ["KeyAlgorithm", "KeyStore", "SecretKey", "Signer", "SoftwareKeySigner", "SoftwareSigner"]
