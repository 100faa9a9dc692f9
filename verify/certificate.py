"""Verifying an X.509 certificate: the chain to a trust anchor, its profile, and its status now.

    report = verify_certificate(certificate, chain=extra, trust=anchors, status=our_ca_status, now=now)

The path is built by hand (the platform's hierarchy is at most root → issuing CA → end entity, and
cryptography's ``PolicyBuilder`` verifiers insist on Web PKI / client-auth EKUs that document-signing
certificates do not have), from the certificate up through the trust anchors' intermediates and the
certificates the caller supplies, to a root of ``trust``. Every link is checked:

- the issuer's name is the certificate's issuer name and its key verifies the certificate's signature;
- the issuer is a CA (basic constraints ``cA``) allowed to sign certificates (key usage
  ``keyCertSign`` when present) and within its path length constraint;
- every certificate of the path is within its validity period at ``now``.

A certificate supplied in ``chain`` is only a candidate: it never becomes a trust anchor, whatever it
claims to be. Indications in ETSI EN 319 102-1 terms (as for signatures, ``verify.pdf``):

==============  ==============================  ===============================================
indication      sub-indication                  when
==============  ==============================  ===============================================
TOTAL_PASSED                                    chain to an anchor, in validity, status ``good``
TOTAL_FAILED    REVOKED                         the certificate is revoked
INDETERMINATE   NO_CERTIFICATE_CHAIN_FOUND      no path to an anchor (foreign, wrong chain, forged)
INDETERMINATE   CHAIN_CONSTRAINTS_FAILURE       a CA of the path may not sign it (constraints)
INDETERMINATE   OUT_OF_BOUNDS_NOT_REVOKED       expired (or not yet valid), not revoked
INDETERMINATE   OUT_OF_BOUNDS_NO_POE            a CA certificate of the path is out of validity
INDETERMINATE   TRY_LATER                       suspended (certificateHold): may come back
INDETERMINATE   REVOCATION_UNKNOWN              chains to an anchor, but the issuer has no record
==============  ==============================  ===============================================

The status comes from ``status`` (``verify.pdf.CertificateStatus``: the issuing CA's own records).
This module imports nothing of the web layer or of storage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eauth.errors import InvalidCertificate
from verify.pdf import (
    FAILED,
    INDETERMINATE,
    PASSED,
    UNKNOWN,
    CertificateInfo,
    CertificateState,
    CertificateStatus,
    Indication,
    TrustAnchors,
)

DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
MAX_CERTIFICATE_BYTES = 64 << 10
MAX_CHAIN = 8
MAX_DEPTH = 6
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
_EKU_NAMES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth", ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection", ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping", ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    DOCUMENT_SIGNING: "documentSigning",
}
_KEY_USAGES = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
               "key_agreement", "key_cert_sign", "crl_sign")


@dataclass(frozen=True, slots=True)
class CertificateReport:
    """The outcome for one certificate."""

    indication: Indication
    sub_indication: str | None
    detail: str
    findings: tuple[str, ...]
    certificate: CertificateInfo
    sha256: str
    profile: str  # citizen, enterprise, agency-seal, ocsp-responder, tsa, ca, other
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    chain: tuple[CertificateInfo, ...]  # the certificate first, the trust anchor last; empty: no path
    trust_anchor: str | None
    status: CertificateState

    @property
    def passed(self) -> bool:
        return self.indication == PASSED


def parse_certificate(text: str | bytes, *, field: str = "certificate") -> x509.Certificate:
    """A certificate from PEM, base64 DER or DER; ``InvalidCertificate`` (with ``field``) otherwise."""
    if isinstance(text, str):
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidCertificate(f"{field}: not PEM or base64 (non-ASCII characters)", field=field) from None
    else:
        data = text
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise InvalidCertificate(f"{field}: larger than {MAX_CERTIFICATE_BYTES >> 10} KiB", field=field)
    if b"-----BEGIN" in data:
        found = _PEM.findall(data.decode("ascii", errors="replace"))
        if len(found) != 1:
            raise InvalidCertificate(f"{field}: must hold exactly one PEM certificate, found {len(found)}",
                                     field=field)
        data = found[0].encode()
    if not data.startswith(b"\x30"):
        try:
            data = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidCertificate(f"{field}: neither PEM nor base64 DER", field=field) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a negative serial: parsed, and judged below
            return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidCertificate(f"{field}: not a DER X.509 certificate ({exc})", field=field) from None


def verify_certificate(certificate: x509.Certificate, *, chain: Sequence[x509.Certificate] = (),
                       trust: TrustAnchors, status: CertificateStatus | None, now: datetime) -> CertificateReport:
    """The report on ``certificate`` at ``now`` (see the module doc)."""
    if now.utcoffset() is None:
        raise ValueError("now needs a time zone")
    if len(chain) > MAX_CHAIN:
        raise InvalidCertificate(f"chain: at most {MAX_CHAIN} certificates", field="chain")
    anchors = {_der(a.certificate): a.name for a in trust.roots}
    candidates = _unique([*trust.intermediates, *chain, *(a.certificate for a in trust.roots)])
    findings: list[str] = []
    path, problem = _build(certificate, candidates, anchors, findings)
    info = _info(certificate)
    base = dict(certificate=info, sha256=hashlib.sha256(_der(certificate)).hexdigest(), profile=_profile(certificate),
                key_usage=_key_usage(certificate), extended_key_usage=_eku(certificate))
    if path is None:
        return CertificateReport(indication=INDETERMINATE, sub_indication=problem or "NO_CERTIFICATE_CHAIN_FOUND",
                                 detail=findings[0] if findings else "the certificate does not chain to a trust anchor",
                                 findings=tuple(findings), chain=(), trust_anchor=None, status=UNKNOWN, **base)
    anchor = anchors[_der(path[-1])]
    state = _status(status, certificate, path)
    indication, sub = PASSED, None
    out_of_bounds = _out_of_bounds(path, now, findings)
    if state.status == "revoked":
        indication, sub = FAILED, "REVOKED"
        findings.insert(0, f"the certificate is revoked since {_when(state.since)}"
                           f"{' (' + state.reason + ')' if state.reason else ''}")
    elif out_of_bounds is not None:
        indication, sub = INDETERMINATE, out_of_bounds
    elif problem is not None:
        indication, sub = INDETERMINATE, problem
    elif state.status == "suspended":
        indication, sub = INDETERMINATE, "TRY_LATER"
        findings.insert(0, f"the certificate is suspended (on hold) since {_when(state.since)}: it may be "
                           "reinstated or revoked")
    elif state.status != "good":
        indication, sub = INDETERMINATE, "REVOCATION_UNKNOWN"
        findings.insert(0, "the issuing CA has no record of this certificate: its status is unknown"
                           + (f" ({state.source})" if state.source else ""))
    if indication == PASSED:
        detail = f"chains to the root of {anchor}, within its validity, and its status is good ({state.source})"
    else:
        detail = findings[0]
    return CertificateReport(indication=indication, sub_indication=sub, detail=detail, findings=tuple(findings),
                             chain=tuple(_info(c) for c in path), trust_anchor=anchor, status=state, **base)


# --- the path --------------------------------------------------------------------------------------


def _build(certificate: x509.Certificate, candidates: list[x509.Certificate], anchors: dict[bytes, str],
           findings: list[str]) -> tuple[list[x509.Certificate] | None, str | None]:
    """The path from ``certificate`` to an anchor (certificate first), and the first constraint it
    breaks (None: none); or (None, sub-indication) without a path, with findings saying why."""
    if _der(certificate) in anchors:
        return [certificate], None
    best: list[x509.Certificate] | None = None
    best_problem: str | None = None
    best_findings: list[str] = []
    for path in _paths([certificate], candidates, anchors):
        link_findings: list[str] = []
        problem = _constraints(path, link_findings)
        if problem is None:
            findings.extend(link_findings)
            return path, None
        if best is None:
            best, best_problem, best_findings = path, problem, link_findings
    if best is not None:
        findings.extend(best_findings)
        return best, best_problem
    named = [c for c in candidates if c.subject == certificate.issuer]
    issuer = certificate.issuer.rfc4514_string()
    if any(_signed_by(certificate, c) for c in named):
        findings.append(f"the chain goes up to {issuer} and no further: not to the root of a trusted platform "
                        "(certificates sent in the chain are never trusted as roots)")
    elif named:
        findings.append(f"a CA named {issuer} is known, but its key did not sign this certificate (a different "
                        "platform's CA with the same name, or a forged certificate)")
    else:
        findings.append(f"the issuer {issuer} is not a CA of any trusted platform")
    return None, "NO_CERTIFICATE_CHAIN_FOUND"


def _paths(path: list[x509.Certificate], candidates: list[x509.Certificate], anchors: dict[bytes, str]):
    """Every path from ``path[-1]`` up to an anchor through ``candidates`` whose signatures verify."""
    top = path[-1]
    if len(path) > MAX_DEPTH:
        return
    for issuer in candidates:
        if issuer.subject != top.issuer or any(_der(issuer) == _der(c) for c in path):
            continue
        if not _signed_by(top, issuer):
            continue
        extended = [*path, issuer]
        if _der(issuer) in anchors:
            yield extended
        else:
            yield from _paths(extended, candidates, anchors)


def _constraints(path: list[x509.Certificate], findings: list[str]) -> str | None:
    """The first RFC 5280 constraint the path breaks, as a sub-indication (None: it keeps them all)."""
    for depth, issuer in enumerate(path[1:]):
        # ``depth``: how many CA certificates lie between this issuer and the end entity.
        name = issuer.subject.rfc4514_string()
        constraints = _extension(issuer, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            findings.append(f"{name} signs a certificate of the path but is not a CA (basic constraints)")
            return "CHAIN_CONSTRAINTS_FAILURE"
        usage = _extension(issuer, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            findings.append(f"{name} may not sign certificates (key usage without keyCertSign)")
            return "CHAIN_CONSTRAINTS_FAILURE"
        if constraints.path_length is not None and depth > constraints.path_length:
            findings.append(f"{name} allows {constraints.path_length} CA certificate(s) below it, the path has {depth}")
            return "CHAIN_CONSTRAINTS_FAILURE"
    return None


def _out_of_bounds(path: list[x509.Certificate], now: datetime, findings: list[str]) -> str | None:
    leaf = path[0]
    result = None
    if now > leaf.not_valid_after_utc:
        findings.insert(0, f"the certificate expired at {leaf.not_valid_after_utc.isoformat()}")
        result = "OUT_OF_BOUNDS_NOT_REVOKED"
    elif now < leaf.not_valid_before_utc:
        findings.insert(0, f"the certificate is not valid before {leaf.not_valid_before_utc.isoformat()}")
        result = "OUT_OF_BOUNDS_NOT_REVOKED"
    for ca in path[1:]:
        if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
            findings.append(f"the CA certificate {ca.subject.rfc4514_string()} is not valid now (valid "
                            f"{ca.not_valid_before_utc.isoformat()} to {ca.not_valid_after_utc.isoformat()})")
            result = result or "OUT_OF_BOUNDS_NO_POE"
    return result


def _status(status: CertificateStatus | None, certificate: x509.Certificate,
            path: list[x509.Certificate]) -> CertificateState:
    if status is None:
        return UNKNOWN
    try:
        return status(certificate.issuer.public_bytes(), certificate.serial_number)
    except Exception:
        return UNKNOWN


# --- what the certificate is -----------------------------------------------------------------------


def _profile(certificate: x509.Certificate) -> str:
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        return "ca"
    eku = _extension(certificate, x509.ExtendedKeyUsage)
    usages = set(eku) if eku is not None else set()
    if ExtendedKeyUsageOID.OCSP_SIGNING in usages:
        return "ocsp-responder"
    if ExtendedKeyUsageOID.TIME_STAMPING in usages:
        return "tsa"
    if DOCUMENT_SIGNING in usages:
        return "agency-seal"
    if ExtendedKeyUsageOID.CLIENT_AUTH in usages:
        if certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER):
            return "enterprise"
        if certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
            return "citizen"
    return "other"


def _key_usage(certificate: x509.Certificate) -> tuple[str, ...]:
    usage = _extension(certificate, x509.KeyUsage)
    if usage is None:
        return ()
    return tuple(name for name in _KEY_USAGES if getattr(usage, name))


def _eku(certificate: x509.Certificate) -> tuple[str, ...]:
    eku = _extension(certificate, x509.ExtendedKeyUsage)
    return tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku) if eku is not None else ()


def _extension(certificate: x509.Certificate, kind):
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed or duplicated extension
        return None


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
        return True
    except Exception:  # ValueError (names, algorithms), InvalidSignature, TypeError (key type)
        return False


def _info(certificate: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(subject=certificate.subject.rfc4514_string(), serial=f"{certificate.serial_number:x}",
                           issuer=certificate.issuer.rfc4514_string(), not_before=certificate.not_valid_before_utc,
                           not_after=certificate.not_valid_after_utc)


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def _unique(certificates: list[x509.Certificate]) -> list[x509.Certificate]:
    seen, unique = set(), []
    for certificate in certificates:
        der = _der(certificate)
        if der not in seen:
            seen.add(der)
            unique.append(certificate)
    return unique


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "an unknown time"
