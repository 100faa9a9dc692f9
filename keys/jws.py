"""Compact JWS (ES256) signed through a ``Signer``, so the key may live in an HSM.

pyjwt signs with a private key object; ``KeyStoreES256`` hands it the key store's signer instead and
converts the DER ECDSA signature to JOSE's fixed-size r || s. Verification needs only the public key
and uses pyjwt's own ES256.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

import jwt
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import Algorithm

from eauth.errors import UnsupportedAlgorithm
from keys.base import KeyAlgorithm, Signer


class KeyStoreES256(Algorithm):
    """pyjwt's ES256 signing through our Signer (signing only)."""

    def prepare_key(self, key: Signer) -> Signer:
        return key

    def sign(self, msg: bytes, key: Signer) -> bytes:
        r, s = decode_dss_signature(key.sign(msg))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, msg: bytes, key, sig: bytes) -> bool:  # verification uses pyjwt's own ES256
        raise NotImplementedError

    def to_jwk(self, key_obj, as_dict: bool = False):
        raise NotImplementedError

    def from_jwk(self, jwk):
        raise NotImplementedError


#: A PyJWS that signs ES256 through a Signer and knows no other algorithm.
SIGNING_JWS = jwt.PyJWS(algorithms=[])
SIGNING_JWS.register_algorithm("ES256", KeyStoreES256())


def encode_es256(payload: bytes, signer: Signer, *, kid: str, headers: Mapping[str, object] | None = None) -> str:
    """A compact JWS of ``payload``, header ``alg``/``kid`` plus ``headers`` (a ``"typ": None`` drops typ)."""
    if signer.algorithm is not KeyAlgorithm.EC_P256:
        raise UnsupportedAlgorithm(f"ES256 needs an EC P-256 key, {signer.label!r} is {signer.algorithm.value}")
    return SIGNING_JWS.encode(payload, signer, algorithm="ES256", headers={"kid": kid, **(headers or {})})


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint of an EC key, base64url (pyjwt has none)."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
