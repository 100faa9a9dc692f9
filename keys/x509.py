"""Sign cryptography's X.509 builders (certificates, CRLs, OCSP responses) with any ``Signer``.

cryptography only signs with keys it holds. A key loaded in this process is handed to it directly
(the fast path). For any other key (PKCS#11), cryptography signs with a throw-away key of the same
type, which fixes the to-be-signed bytes including the signature algorithm; the real signer signs
those bytes and the signature is swapped in. Only ``signatureValue`` changes, so the TBS bytes and
their encoding are exactly what cryptography produced; OCSP responses also get their responder ID
set, because cryptography insists that the responder certificate matches the key it signs with.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from keys.base import KeyAlgorithm, Signer


@cache
def _placeholder_key(is_rsa: bool) -> PrivateKeyTypes:
    # Signature algorithm identifiers depend on the key type and hash only, not the RSA modulus size.
    return (KeyAlgorithm.RSA_2048 if is_rsa else KeyAlgorithm.EC_P256).generate_software_key()


@cache
def _placeholder_responder(is_rsa: bool) -> x509.Certificate:
    """A certificate for the placeholder key: cryptography refuses an OCSP responder whose key is not the signer's."""
    key = _placeholder_key(is_rsa)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "placeholder")])
    now = dt.datetime.now(dt.timezone.utc)
    builder = x509.CertificateBuilder(name, name, key.public_key(), 1, now, now + dt.timedelta(days=1))
    return builder.sign(key, hashes.SHA256())


def _responder_id(cert: x509.Certificate, encoding: ocsp.OCSPResponderEncoding) -> asn1_ocsp.ResponderId:
    """The RFC 6960 ResponderID of ``cert``, encoded as cryptography does: subject name or SHA-1 of the key."""
    if encoding is ocsp.OCSPResponderEncoding.NAME:
        return asn1_ocsp.ResponderId({"by_name": asn1_x509.Name.load(cert.subject.public_bytes())})
    spki = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)).public_key
    return asn1_ocsp.ResponderId({"by_key": spki.sha1})


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


def sign_crl(builder: x509.CertificateRevocationListBuilder, signer: Signer) -> x509.CertificateRevocationList:
    """``builder`` signed by ``signer`` with SHA-256."""
    if (key := _loaded_key(signer)) is not None:
        return builder.sign(key, hashes.SHA256())
    draft = builder.sign(_placeholder_key(signer.algorithm.is_rsa), hashes.SHA256())
    crl = asn1_crl.CertificateList.load(draft.public_bytes(Encoding.DER))
    crl["signature"] = signer.sign(draft.tbs_certlist_bytes)
    return x509.load_der_x509_crl(crl.dump())


def crl_draft(builder: x509.CertificateRevocationListBuilder, signer: Signer) -> x509.CertificateRevocationList:
    """``builder`` signed by a throw-away key of ``signer``'s type: its TBS bytes and signature algorithm
    are exactly those of ``sign_crl(builder, signer)``; for callers that complete the TBS themselves
    and then sign it with ``signer.sign`` (``ca.crl`` adds the stored entries)."""
    return builder.sign(_placeholder_key(signer.algorithm.is_rsa), hashes.SHA256())


def sign_ocsp_response(builder: ocsp.OCSPResponseBuilder, signer: Signer) -> ocsp.OCSPResponse:
    """``builder`` signed by ``signer`` with SHA-256."""
    if (key := _loaded_key(signer)) is not None:
        return builder.sign(key, hashes.SHA256())
    # The draft names a placeholder responder (cryptography checks it against the signing key); the real
    # responder's ID goes into the TBS data before it is signed. The builder keeps its parts in private
    # attributes, read here because it offers no other way to swap the responder.
    responder, encoding = builder._responder_id
    is_rsa = signer.algorithm.is_rsa
    draft_builder = ocsp.OCSPResponseBuilder(
        builder._response, (_placeholder_responder(is_rsa), encoding), builder._certs, builder._extensions
    )
    draft = draft_builder.sign(_placeholder_key(is_rsa), hashes.SHA256())
    response = asn1_ocsp.OCSPResponse.load(draft.public_bytes(Encoding.DER))
    basic = response["response_bytes"]["response"].parsed
    tbs = basic["tbs_response_data"]
    tbs["responder_id"] = _responder_id(responder, encoding)
    basic["signature"] = signer.sign(tbs.dump())
    response["response_bytes"]["response"] = basic
    return ocsp.load_der_ocsp_response(response.dump())
