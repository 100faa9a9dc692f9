"""PKCS#10 requests: parse, check proof of possession, check the key is one we certify."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as CryptographyUnsupported
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from eauth.errors import CsrSignatureInvalid, InvalidCsr, UnsupportedAlgorithm, WeakKey

MAX_CSR_BYTES = 16 * 1024
_CURVES = (ec.SECP256R1, ec.SECP384R1)
_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


def parse_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """The request in ``data`` (PEM or DER), with its signature and key checked."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CSR_BYTES:
        raise InvalidCsr(f"certificate request larger than {MAX_CSR_BYTES} bytes")
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(raw)
        else:
            csr = x509.load_der_x509_csr(raw)
    except ValueError as exc:
        raise InvalidCsr(f"not a PKCS#10 certificate request: {exc}") from None
    check_public_key(_public_key(csr))
    try:
        algorithm = csr.signature_hash_algorithm
    except CryptographyUnsupported:
        algorithm = None
    if not isinstance(algorithm, _HASHES):
        oid = csr.signature_algorithm_oid.dotted_string
        raise UnsupportedAlgorithm(f"certificate request signed with unsupported algorithm {oid}; use SHA-256 or better")
    if not csr.is_signature_valid:
        raise CsrSignatureInvalid("the certificate request's signature does not match its public key")
    return csr


def _public_key(csr: x509.CertificateSigningRequest) -> CertificatePublicKeyTypes:
    try:
        return csr.public_key()
    except Exception as exc:  # unsupported or malformed SubjectPublicKeyInfo
        raise WeakKey(f"certificate request key not usable: {exc}") from None


def check_public_key(key: CertificatePublicKeyTypes) -> None:
    """WeakKey unless ``key`` is RSA 2048–4096 (exponent 65537) or ECDSA P-256/P-384."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise WeakKey(f"RSA key of {key.key_size} bits is too weak; at least 2048 bits are required")
        if key.key_size > 4096:
            raise WeakKey(f"RSA key of {key.key_size} bits is not supported; at most 4096 bits")
        if key.public_numbers().e != 65537:
            raise WeakKey("RSA public exponent must be 65537")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise WeakKey(f"elliptic curve {key.curve.name} is not supported; use P-256 or P-384")
        return
    raise WeakKey(f"{type(key).__name__.removeprefix('_')} keys are not supported; use ECDSA P-256 or RSA")
