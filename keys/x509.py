"""Sign cryptography's X.509 builders (certificates; CRL drafts) with any ``Signer``.

cryptography only signs with keys it holds. A key loaded in this process is handed to it directly
(the fast path). For any other key (PKCS#11), cryptography signs with a throw-away key of the same
type, which fixes the to-be-signed bytes including the signature algorithm; the real signer signs
those bytes and the signature is swapped in. Only ``signatureValue`` changes, so the TBS bytes and
their encoding are exactly what cryptography produced.
"""

from __future__ import annotations

from functools import cache

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from keys.base import KeyAlgorithm, Signer


@cache
def _placeholder_key(is_rsa: bool) -> PrivateKeyTypes:
    # Signature algorithm identifiers depend on the key type and hash only, not the RSA modulus size.
    return (KeyAlgorithm.RSA_2048 if is_rsa else KeyAlgorithm.EC_P256).generate_software_key()


def _loaded_key(signer: Signer) -> PrivateKeyTypes | None:
    # Not isinstance(signer, SoftwareSigner): a runtime Protocol check costs more than signing here.
    return getattr(signer, "private_key", None)


def sign_certificate(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    """``builder`` signed by ``signer`` with SHA-256."""
    if (key := _loaded_key(signer)) is not None:
        return builder.sign(key, hashes.SHA256())
    draft = builder.sign(_placeholder_key(signer.algorithm.is_rsa), hashes.SHA256())
    cert = asn1_x509.Certificate.load(draft.public_bytes(Encoding.DER))
    cert["signature_value"] = signer.sign(draft.tbs_certificate_bytes)
    return x509.load_der_x509_certificate(cert.dump())


def crl_draft(builder: x509.CertificateRevocationListBuilder, signer: Signer) -> x509.CertificateRevocationList:
    """``builder`` signed by a throw-away key of ``signer``'s type: its TBS header and signature
    algorithm are what ``signer`` would produce, for callers that complete the TBS themselves and sign
    it with ``signer.sign`` (``ca.crl`` splices in the stored entries)."""
    return builder.sign(_placeholder_key(signer.algorithm.is_rsa), hashes.SHA256())
