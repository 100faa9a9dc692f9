"""The status of a certificate another (imported, trusted) platform issued: asked of that platform's
OCSP responder, the answer checked here. No I/O: the caller sends ``ocsp_request`` and hands the
response to ``ocsp_state``.

An answer counts only if it is a successful basic response for exactly that certificate (issuer name
and key hash, serial), current at ``now`` (thisUpdate ≤ now < nextUpdate, a few minutes' skew
allowed), signed by the issuing CA itself or by a responder certificate that the issuing CA issued
for OCSP signing (id-kp-OCSPSigning) and that is valid at ``now``. Anything else is ``unknown``
with the reason, never ``good``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from verify.pdf import CertificateState

SKEW = timedelta(minutes=5)
MAX_RESPONSE_BYTES = 64 << 10


def ocsp_request(issuer: x509.Certificate, serial: int) -> bytes:
    """The DER OCSP request (SHA-1 CertID, as RFC 5019 clients send) for ``serial`` of ``issuer``."""
    name_hash = _sha1(issuer.subject.public_bytes())
    key_hash = _sha1(_key_bits(issuer))
    return (ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1())
            .build().public_bytes(Encoding.DER))


def ocsp_state(response: bytes, *, issuer: x509.Certificate, serial: int, now: datetime,
               source: str) -> CertificateState:
    """What the response says of ``serial`` of ``issuer`` (see the module doc); ``source`` names the
    responder in the state."""
    def unknown(why: str) -> CertificateState:
        return CertificateState("unknown", source=f"{source}: {why}")

    if len(response) > MAX_RESPONSE_BYTES:
        return unknown("the OCSP response is too large")
    try:
        answer = ocsp.load_der_ocsp_response(response)
    except ValueError:
        return unknown("not an OCSP response")
    if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return unknown(f"the responder answered {answer.response_status.name}")
    signer = _responder(answer, issuer, now)
    if signer is None:
        return unknown("the OCSP response is not signed by the issuing CA or a responder it designated")
    if not _verifies(signer, answer.signature, answer.tbs_response_bytes, answer.signature_hash_algorithm):
        return unknown("the OCSP response signature does not verify")
    for single in answer.responses:
        if (single.serial_number == serial and single.issuer_name_hash == _digest(issuer.subject.public_bytes(),
                                                                                  single.hash_algorithm)
                and single.issuer_key_hash == _digest(_key_bits(issuer), single.hash_algorithm)):
            break
    else:
        return unknown("the OCSP response is about another certificate")
    if single.this_update_utc - SKEW > now or (single.next_update_utc is not None and single.next_update_utc <= now):
        return unknown("the OCSP response is not current")
    if single.certificate_status is ocsp.OCSPCertStatus.GOOD:
        return CertificateState("good", source=source)
    if single.certificate_status is ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason
        if reason is x509.ReasonFlags.certificate_hold:
            return CertificateState("suspended", reason=reason.name, since=single.revocation_time_utc, source=source)
        return CertificateState("revoked", reason=reason.name if reason else None, since=single.revocation_time_utc,
                                source=source)
    return CertificateState("unknown", source=f"{source}: the responder does not know the certificate")


def _responder(answer: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> x509.Certificate | None:
    """The certificate that signed ``answer``: the issuer, or a designated responder it issued."""
    if _is_responder(answer, issuer):
        return issuer
    for candidate in answer.certificates:
        if not _is_responder(answer, candidate) or candidate.issuer != issuer.subject:
            continue
        try:
            candidate.verify_directly_issued_by(issuer)
            eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku and \
                candidate.not_valid_before_utc - SKEW <= now <= candidate.not_valid_after_utc:
            return candidate
    return None


def _is_responder(answer: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if answer.responder_name is not None:
        return answer.responder_name == certificate.subject
    return answer.responder_key_hash == _sha1(_key_bits(certificate))


def _verifies(certificate: x509.Certificate, signature: bytes, data: bytes, algorithm) -> bool:
    key = certificate.public_key()
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (what an OCSP key hash is over)."""
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
    return parsed.public_key["public_key"].contents[1:]  # without the unused-bits byte


def _sha1(data: bytes) -> bytes:
    return _digest(data, hashes.SHA1())


def _digest(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()
