"""Verifying a signed PDF: a report in ETSI EN 319 102-1 terms (indication TOTAL_PASSED /
TOTAL_FAILED / INDETERMINATE with a sub-indication), per signature and for the document.

    report = verify_pdf(pdf, trust=anchors, registry=lookup, status=our_ca_status, now=datetime.now(timezone.utc))

What a signature is checked for, with pyHanko's validator (``pyhanko.sign.validation``):

- integrity: the digest of the signed byte ranges (``HASH_FAILURE``) and the signature value
  (``SIG_CRYPTO_FAILURE``); the byte range itself (``coverage``: a signature that does not cover the
  whole revision it belongs to is a ``FORMAT_FAILURE``);
- modification after signing: pyHanko's difference analysis of every later revision. Only document
  timestamps and DSS updates (``ModificationLevel.LTA_UPDATES``) are accepted, and later signatures
  (each then judged on its own); anything else (new content, pages, annotations, form values,
  replaced objects) is a ``FORMAT_FAILURE`` naming what was found. Bytes after the last ``%%EOF``
  are one too. DocMDP (certification) permissions are reported and must be respected;
- the chain to a trust anchor (``TrustAnchors``: which platform's root), at the time the signature
  timestamp proves (or now, without one), with the revocation data embedded in the document (DSS):
  untrusted is ``INDETERMINATE`` / ``NO_CERTIFICATE_CHAIN_FOUND``;
- revocation at signing time (embedded OCSP/CRL) and now (``CertificateStatus``: our own CA's
  records, supplied by the caller): revoked before the proven signing time is ``REVOKED``; revoked
  later does not undo a timestamped signature, revoked without a timestamp is ``REVOKED_NO_POE``;
- the PAdES level reached (B-B, B-T, B-LT, B-LTA) and the document timestamps.

If a registry lookup is given, the document is looked up by the SHA-256 of the whole file: only
the byte-identical file that was issued matches (a re-rendered or re-signed copy does not).

Hostile input never raises anything but ``NotAPdf`` / ``EncryptedPdf``, and ``PdfTooComplex`` for a
document with more pages or objects than ``limits`` (``eauth.pdf_limits``, checked once the
cross-reference table is read, before any analysis): a file too large, truncated, malformed or with
streams decompressing beyond the limits (``DECODE_LIMITS``) comes back as a report with
``FORMAT_FAILURE``. This module imports nothing of the web layer or of storage: the
registry and the certificate status are callables passed in.
"""

from __future__ import annotations

import asyncio
import binascii
import contextvars
import functools
import hashlib
import logging
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Literal, Protocol

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DocumentDecodeBudget, StreamDecodeLimits
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.validation import (
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
    read_certification_data,
)
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from eauth.errors import EncryptedPdf, NotAPdf, PdfTooComplex
from eauth.pdf_limits import DEFAULT_PDF_LIMITS, PdfLimits, check_pdf_limits

Indication = Literal["TOTAL_PASSED", "TOTAL_FAILED", "INDETERMINATE"]
PASSED, FAILED, INDETERMINATE = "TOTAL_PASSED", "TOTAL_FAILED", "INDETERMINATE"

#: Largest document analysed at all (the HTTP layer refuses larger uploads before this).
MAX_PDF_BYTES = 64 << 20
#: Bounds on stream decompression (zip bombs): 32 MiB per stream, at most 1100:1 (one Deflate
#: layer), and for the whole document at most 64 MiB or ten times its size.
DECODE_LIMITS = DecodeLimits(
    per_stream=StreamDecodeLimits(max_output_size=32 << 20),
    document_budget=DocumentDecodeBudget(base_allowance=64 << 20, max_ratio=10),
)
#: Signature fields analysed at most (each costs a chain validation).
MAX_SIGNATURES = 32


# --- what the caller supplies ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """A root certificate and the name of the platform it belongs to (ours, or an imported one)."""

    name: str
    certificate: x509.Certificate


@dataclass(frozen=True, slots=True)
class TrustAnchors:
    """The roots signatures may chain to, each named, and intermediate (issuing CA, TSA, OCSP)
    certificates that help build the chains."""

    roots: tuple[TrustAnchor, ...]
    intermediates: tuple[x509.Certificate, ...] = ()

    def name_of(self, certificate: asn1_x509.Certificate) -> str | None:
        der = certificate.dump()
        for anchor in self.roots:
            if _der(anchor.certificate) == der:
                return anchor.name
        return None


@dataclass(frozen=True, slots=True)
class CertificateState:
    """A certificate's status: ``good``, ``revoked`` (with reason and time), ``suspended`` (since),
    or ``unknown`` (not a certificate the source knows)."""

    status: Literal["good", "revoked", "suspended", "unknown"]
    reason: str | None = None
    since: datetime | None = None
    source: str = ""


UNKNOWN = CertificateState("unknown")


class CertificateStatus(Protocol):
    """The current status of a certificate by its issuer (the DER of the issuer's Name) and serial
    number, from the issuing CA's own records; ``unknown`` for certificates it did not issue."""

    def __call__(self, issuer: bytes, serial: int) -> CertificateState: ...


@dataclass(frozen=True, slots=True)
class RegistryMatch:
    """The license version whose issued PDF has the document's SHA-256, and its license now."""

    license_id: str
    identifier: str
    type_code: str
    type_name: str | None
    issuer_name: str | None
    status: str  # valid, suspended, revoked, cancelled, expired, superseded
    status_reason: str | None
    version: int
    current_version: int
    current_identifier: str


Registry = Callable[[str], "RegistryMatch | None"]


# --- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    serial: str  # hex
    issuer: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class TimestampInfo:
    """An RFC 3161 timestamp: its time, the TSA, and whether it verifies and is trusted."""

    time: datetime
    tsa: str
    intact: bool
    valid: bool
    trusted: bool
    trust_anchor: str | None


@dataclass(frozen=True, slots=True)
class SigningTime:
    """The time the signer claims, and the signature timestamp that proves it (if any)."""

    claimed: datetime | None
    timestamp: TimestampInfo | None
    proven: bool


@dataclass(frozen=True, slots=True)
class Revocation:
    """The signer certificate's status at signing time (from the embedded data) and now."""

    at_signing_time: CertificateState
    now: CertificateState
    tsa_now: CertificateState | None = None


@dataclass(frozen=True, slots=True)
class Integrity:
    digest_ok: bool
    signature_ok: bool
    digest_algorithm: str
    signature_algorithm: str


@dataclass(frozen=True, slots=True)
class Modifications:
    """What changed after the signed revision: pyHanko's level (NONE, LTA_UPDATES, FORM_FILLING,
    ANNOTATIONS, OTHER), whether that is acceptable, and what was found."""

    level: str | None
    acceptable: bool
    findings: tuple[str, ...] = ()
    later_revisions: int = 0


@dataclass(frozen=True, slots=True)
class DocMdp:
    """The DocMDP permission the signature sets (certification) and whether it was respected."""

    certification: bool
    permission: str | None  # NO_CHANGES, FILL_FORMS, ANNOTATE
    respected: bool | None


@dataclass(frozen=True, slots=True)
class SignatureReport:
    field: str
    indication: Indication
    sub_indication: str | None
    findings: tuple[str, ...]
    signer: CertificateInfo | None
    chain: tuple[CertificateInfo, ...]
    trust_anchor: str | None
    signing_time: SigningTime
    revocation: Revocation
    integrity: Integrity
    coverage: str  # ENTIRE_FILE, ENTIRE_REVISION, PARTIAL
    modifications: Modifications
    docmdp: DocMdp
    level: str | None  # B-B, B-T, B-LT, B-LTA; None: not a PAdES signature
    subfilter: str | None
    revision: int


@dataclass(frozen=True, slots=True)
class DocumentTimestampReport:
    field: str
    indication: Indication
    sub_indication: str | None
    findings: tuple[str, ...]
    timestamp: TimestampInfo | None
    coverage: str
    modifications: Modifications
    revision: int


@dataclass(frozen=True, slots=True)
class RegistryReport:
    """Whether the file is, byte for byte, a version the registry issued, and that license now."""

    found: bool
    byte_identical: bool
    license: RegistryMatch | None
    detail: str


@dataclass(frozen=True, slots=True)
class PdfReport:
    indication: Indication
    sub_indication: str | None
    detail: str
    sha256: str
    size: int
    revisions: int
    signatures: tuple[SignatureReport, ...] = ()
    document_timestamps: tuple[DocumentTimestampReport, ...] = ()
    findings: tuple[str, ...] = ()
    registry: RegistryReport | None = None

    @property
    def passed(self) -> bool:
        return self.indication == PASSED


# --- entry points ----------------------------------------------------------------------------------


def verify_pdf(pdf: bytes, *, trust: TrustAnchors, registry: Registry | None = None,
               status: CertificateStatus | None = None, now: datetime,
               limits: PdfLimits = DEFAULT_PDF_LIMITS) -> PdfReport:
    """The report on ``pdf`` (see the module doc). Raises only NotAPdf, EncryptedPdf and PdfTooComplex."""
    return asyncio.run(async_verify_pdf(pdf, trust=trust, registry=registry, status=status, now=now,
                                        limits=limits))


async def async_verify_pdf(pdf: bytes, *, trust: TrustAnchors, registry: Registry | None = None,
                           status: CertificateStatus | None = None, now: datetime,
                           limits: PdfLimits = DEFAULT_PDF_LIMITS) -> PdfReport:
    """``verify_pdf`` where an event loop runs. CPU-bound: prefer a worker process."""
    if now.utcoffset() is None:
        raise ValueError("now needs a time zone")
    sha256 = hashlib.sha256(pdf).hexdigest()
    head = pdf[:1024]
    if b"%PDF-" not in head:
        raise NotAPdf("the document does not start with a %PDF- header")
    registry_report = _registry(registry, sha256) if registry is not None else None
    base = dict(sha256=sha256, size=len(pdf), registry=registry_report)
    if len(pdf) > MAX_PDF_BYTES:
        return _format_failure(base, f"the document is larger than {MAX_PDF_BYTES >> 20} MiB")
    token = _verifying.set(True)
    try:
        try:
            reader = PdfFileReader(BytesIO(pdf), strict=False, decode_limits=DECODE_LIMITS)
            encrypted = reader.encrypted
            revisions = reader.xrefs.total_revisions
        except Exception as exc:  # hostile input: whatever the parser trips over is a format failure
            return _format_failure(base, f"the PDF cannot be read: {_describe(exc)}")
        if encrypted:
            raise EncryptedPdf("the PDF is encrypted: signatures in encrypted PDFs are not verified")
        try:
            check_pdf_limits(reader, limits)
        except PdfTooComplex:
            raise
        except Exception as exc:  # no page tree, or a page count that is not a number
            return _format_failure(base, f"the PDF cannot be read: {_describe(exc)}", revisions=revisions)
        try:
            return await _verify(reader, pdf, trust=trust, status=status, now=now, base=base,
                                 revisions=revisions)
        except (NotAPdf, EncryptedPdf):
            raise
        except Exception as exc:
            return _format_failure(base, f"the PDF's signatures cannot be analysed: {_describe(exc)}",
                                   revisions=revisions)
    finally:
        _verifying.reset(token)


def _format_failure(base: dict, finding: str, revisions: int = 0) -> PdfReport:
    return PdfReport(indication=FAILED, sub_indication="FORMAT_FAILURE", detail=finding, revisions=revisions,
                     findings=(finding,), **base)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _registry(registry: Registry, sha256: str) -> RegistryReport:
    match = registry(sha256)
    if match is None:
        return RegistryReport(found=False, byte_identical=False, license=None,
                              detail="not the registry's copy: no issued license has a PDF with this SHA-256 "
                                     "(a re-rendered or re-signed copy does not match)")
    return RegistryReport(found=True, byte_identical=True, license=match,
                          detail=f"byte-identical to version {match.version} of license {match.identifier} "
                                 f"as issued; the license is {match.status}")


# --- the analysis ----------------------------------------------------------------------------------


async def _verify(reader: PdfFileReader, pdf: bytes, *, trust: TrustAnchors, status: CertificateStatus | None,
                  now: datetime, base: dict, revisions: int) -> PdfReport:
    findings: list[str] = []
    trailing = _after_last_eof(pdf)
    if trailing:
        findings.append(f"{trailing} bytes after the last %%EOF marker, not part of any revision "
                        "(appended after signing)")
    try:
        embedded = reader.embedded_signatures
    except Exception as exc:
        return _format_failure(base, f"the signature fields cannot be read: {_describe(exc)}", revisions)
    if len(embedded) > MAX_SIGNATURES:
        return _format_failure(base, f"more than {MAX_SIGNATURES} signatures", revisions)
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        dss = None
    except Exception as exc:
        dss = None
        findings.append(f"the document security store (DSS) cannot be read: {_describe(exc)}")
    try:
        certification = read_certification_data(reader)
    except Exception:
        certification = None
    context = _Context(trust, dss, now)
    signatures: list[SignatureReport] = []
    timestamps: list[DocumentTimestampReport] = []
    kinds = []
    for sig in embedded:
        try:
            kinds.append((sig, str(sig.sig_object_type)))
        except Exception:
            kinds.append((sig, "/Sig"))
    later_fields = {i: {s.field_name for s, kind in kinds[i + 1:] if kind == "/Sig"} for i in range(len(kinds))}
    doc_ts_revisions: list[tuple[int, bool]] = []
    for index, (sig, kind) in enumerate(kinds):
        if kind == "/DocTimeStamp":
            report = await _document_timestamp(sig, context, revisions)
            timestamps.append(report)
            doc_ts_revisions.append((sig.signed_revision, report.indication == PASSED))
    for index, (sig, kind) in enumerate(kinds):
        if kind != "/DocTimeStamp":
            signatures.append(await _signature(sig, context, status, certification, later_fields[index],
                                               doc_ts_revisions, revisions))
    if not signatures and not timestamps:
        findings.insert(0, "the PDF holds no signature")
        return PdfReport(indication=INDETERMINATE, sub_indication="SIGNED_DATA_NOT_FOUND",
                         detail="the PDF holds no signature", revisions=revisions, findings=tuple(findings), **base)
    results = [(r.indication, r.sub_indication, r.field) for r in (*signatures, *timestamps)]
    if trailing:
        results.append((FAILED, "FORMAT_FAILURE", None))
    indication, sub_indication = _worst(results)
    detail = _summary(indication, sub_indication, signatures, timestamps, findings)
    return PdfReport(indication=indication, sub_indication=sub_indication, detail=detail, revisions=revisions,
                     signatures=tuple(signatures), document_timestamps=tuple(timestamps), findings=tuple(findings),
                     **base)


_RANK = {FAILED: 2, INDETERMINATE: 1, PASSED: 0}


def _worst(results: Sequence[tuple[str, str | None, str | None]]) -> tuple[str, str | None]:
    indication, sub_indication = PASSED, None
    for result, sub, _ in results:
        if _RANK[result] > _RANK[indication]:
            indication, sub_indication = result, sub
    return indication, sub_indication


def _summary(indication: str, sub: str | None, signatures, timestamps, findings) -> str:
    if indication == PASSED:
        signers = ", ".join(s.signer.subject for s in signatures if s.signer) or "document timestamps"
        return f"every signature is valid: {signers}"
    for item in (*signatures, *timestamps):
        if item.indication == indication and item.sub_indication == sub and item.findings:
            return f"{item.field}: {item.findings[0]}"
    return findings[0] if findings else f"{indication} {sub or ''}".strip()


def _after_last_eof(pdf: bytes) -> int:
    """Bytes after the last ``%%EOF`` beyond an end-of-line (what an appended payload leaves)."""
    end = pdf.rfind(b"%%EOF")
    if end < 0:
        return 0
    tail = pdf[end + 5:]
    return len(tail.strip(b"\r\n\t\f\x00 "))


class _Context:
    """Validation contexts over the trust anchors and the document's DSS, built on demand."""

    def __init__(self, trust: TrustAnchors, dss: DocumentSecurityStore | None, now: datetime) -> None:
        self.trust, self.dss, self.now = trust, dss, now
        self.roots = [_asn1(_der(a.certificate)) for a in trust.roots]
        self.intermediates = [_asn1(_der(c)) for c in trust.intermediates]

    def make(self, *, moment: datetime, mode: str) -> ValidationContext | None:
        """A context at ``moment``; None for ``hard-fail`` when the document embeds no revocation data."""
        kwargs = dict(trust_roots=self.roots, other_certs=list(self.intermediates), allow_fetching=False,
                      revocation_mode=mode, moment=moment)
        try:
            if self.dss is not None:
                return self.dss.as_validation_context(kwargs)
            return ValidationContext(**kwargs)
        except ValueError:  # hard-fail without any CRL or OCSP response to check against
            if mode == "hard-fail":
                return None
            kwargs.pop("other_certs")
            return ValidationContext(other_certs=list(self.intermediates), **kwargs)


def _coverage(level: SignatureCoverageLevel | None) -> str:
    if level == SignatureCoverageLevel.ENTIRE_FILE:
        return "ENTIRE_FILE"
    if level == SignatureCoverageLevel.ENTIRE_REVISION:
        return "ENTIRE_REVISION"
    return "PARTIAL"


def _modifications(status, later_signature_fields: set[str], revision: int, revisions: int) -> Modifications:
    later = max(0, revisions - 1 - revision)
    diff = status.diff_result
    coverage = status.coverage
    if coverage not in (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION):
        return Modifications(level="OTHER", acceptable=False, later_revisions=later, findings=(
            "the signature's byte range does not cover the whole revision it belongs to",))
    if diff is None:
        level = ModificationLevel.NONE if coverage == SignatureCoverageLevel.ENTIRE_FILE else None
        return Modifications(level=level.name if level else None, acceptable=level is not None, later_revisions=later,
                             findings=() if level else ("the changes after signing were not analysed",))
    if isinstance(diff, SuspiciousModification):
        return Modifications(level="OTHER", acceptable=False, later_revisions=later,
                             findings=(f"modified after signing: {_describe_diff(diff)}",))
    level = diff.modification_level
    fields = sorted(diff.changed_form_fields)
    if level in (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES):
        found = () if level == ModificationLevel.NONE else (
            "after signing only document timestamps and validation data (DSS) were added",)
        return Modifications(level=level.name, acceptable=True, findings=found, later_revisions=later)
    if level == ModificationLevel.FORM_FILLING and fields and set(fields) <= later_signature_fields:
        return Modifications(level=level.name, acceptable=True, later_revisions=later,
                             findings=(f"signed again after this signature: {', '.join(fields)}",))
    what = {ModificationLevel.FORM_FILLING: "form fields filled in or changed",
            ModificationLevel.ANNOTATIONS: "annotations added or changed"}.get(level, "content changed")
    suffix = f" ({', '.join(fields)})" if fields else ""
    return Modifications(level=level.name, acceptable=False, later_revisions=later,
                         findings=(f"modified after signing: {what}{suffix}",))


def _describe_diff(diff: SuspiciousModification) -> str:
    text = str(diff).strip() or type(diff).__name__
    return text.splitlines()[0][:300]


def _timestamp_info(ts, trust: TrustAnchors) -> TimestampInfo | None:
    if ts is None:
        return None
    anchor = trust.name_of(ts.validation_path.first) if ts.validation_path is not None else None
    return TimestampInfo(time=ts.timestamp, tsa=_certificate_info(ts.signing_cert).subject, intact=bool(ts.intact),
                         valid=bool(ts.valid), trusted=bool(ts.trusted), trust_anchor=anchor)


def _claimed_timestamp(sig: EmbeddedPdfSignature) -> datetime | None:
    """The genTime of the signature timestamp token, read before anything is validated (the moment
    the chain is validated at, if the token then proves it)."""
    try:
        attrs = sig.signer_info["unsigned_attrs"]
        if isinstance(attrs, core.Void):
            return None
        for attr in attrs:
            if attr["type"].native == "signature_time_stamp_token":
                token: cms.ContentInfo = attr["values"][0]
                return token["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    except Exception:
        return None
    return None


async def _document_timestamp(sig: EmbeddedPdfSignature, context: _Context, revisions: int) -> DocumentTimestampReport:
    name = _field(sig)
    try:
        status = await async_validate_pdf_timestamp(sig, context.make(moment=context.now, mode="soft-fail"))
    except Exception as exc:
        return DocumentTimestampReport(field=name, indication=FAILED, sub_indication="FORMAT_FAILURE",
                                       findings=(f"the document timestamp cannot be read: {_describe(exc)}",),
                                       timestamp=None, coverage="PARTIAL",
                                       modifications=Modifications(level=None, acceptable=False), revision=-1)
    info = _timestamp_info(status, context.trust)
    modifications = _modifications(status, set(), sig.signed_revision, revisions)
    findings = list(modifications.findings) if not modifications.acceptable else []
    if not status.intact:
        indication, sub = FAILED, "HASH_FAILURE"
        findings.insert(0, "the document timestamp's digest does not match the document")
    elif not status.valid:
        indication, sub = FAILED, "SIG_CRYPTO_FAILURE"
        findings.insert(0, "the document timestamp's signature does not verify")
    elif not modifications.acceptable:
        indication, sub = FAILED, "FORMAT_FAILURE"
    elif not status.trusted:
        indication = INDETERMINATE
        sub = status.trust_problem_indic.name if status.trust_problem_indic else "NO_CERTIFICATE_CHAIN_FOUND"
        findings.append("the time-stamping authority does not chain to a trust anchor")
    else:
        indication, sub = PASSED, None
    return DocumentTimestampReport(field=name, indication=indication, sub_indication=sub, findings=tuple(findings),
                                   timestamp=info, coverage=_coverage(status.coverage), modifications=modifications,
                                   revision=sig.signed_revision)


def _field(sig: EmbeddedPdfSignature) -> str:
    try:
        return str(sig.field_name)
    except Exception:
        return "?"


async def _signature(sig: EmbeddedPdfSignature, context: _Context, status_of: CertificateStatus | None,
                     certification, later_fields: set[str], doc_timestamps: list[tuple[int, bool]],
                     revisions: int) -> SignatureReport:
    name = _field(sig)
    claimed_ts = _claimed_timestamp(sig)
    moment = claimed_ts or context.now
    try:
        hard = context.make(moment=moment, mode="hard-fail")
        if hard is None:
            status = await async_validate_pdf_signature(sig, context.make(moment=moment, mode="soft-fail"))
            at_signing_checked = False
        else:
            status = await async_validate_pdf_signature(sig, hard)
            at_signing_checked = True
        if at_signing_checked and not status.trusted and status.revocation_details is None and status.trust_problem_indic is not None \
                and status.trust_problem_indic.name not in ("NO_CERTIFICATE_CHAIN_FOUND",) and status.intact \
                and status.valid:
            # No usable revocation data embedded for that time: the chain alone, the status from elsewhere.
            status = await async_validate_pdf_signature(sig, context.make(moment=moment, mode="soft-fail"))
            at_signing_checked = False
        ts = status.timestamp_validity
        if claimed_ts is not None and status.trusted and (ts is None or not ts.trusted):
            # The timestamp proves nothing: the chain as of now instead.
            status = await async_validate_pdf_signature(sig, context.make(moment=context.now, mode="soft-fail"))
            at_signing_checked = False
    except Exception as exc:
        return _unreadable(name, sig, exc)
    return _signature_report(sig, status, name=name, context=context, status_of=status_of,
                             certification=certification, later_fields=later_fields, doc_timestamps=doc_timestamps,
                             revisions=revisions, at_signing_checked=at_signing_checked)


def _unreadable(name: str, sig: EmbeddedPdfSignature, exc: Exception) -> SignatureReport:
    finding = f"the signature cannot be validated: {_describe(exc)}"
    return SignatureReport(
        field=name, indication=FAILED, sub_indication="FORMAT_FAILURE", findings=(finding,), signer=_signer(sig),
        chain=(), trust_anchor=None, signing_time=SigningTime(claimed=None, timestamp=None, proven=False),
        revocation=Revocation(UNKNOWN, UNKNOWN), integrity=Integrity(False, False, "", ""), coverage="PARTIAL",
        modifications=Modifications(level=None, acceptable=False), docmdp=DocMdp(False, None, None), level=None,
        subfilter=None, revision=getattr(sig, "signed_revision", -1))


def _signer(sig: EmbeddedPdfSignature) -> CertificateInfo | None:
    try:
        return _certificate_info(sig.signer_cert)
    except Exception:
        return None


def _signature_report(sig, status, *, name, context: _Context, status_of, certification, later_fields,
                      doc_timestamps, revisions, at_signing_checked) -> SignatureReport:
    trust = context.trust
    findings: list[str] = []
    signer_cert = status.signing_cert
    path = status.validation_path
    chain = tuple(_certificate_info(c) for c in reversed(list(path))) if path is not None else ()
    anchor = trust.name_of(path.first) if path is not None else None
    ts = status.timestamp_validity
    ts_info = _timestamp_info(ts, trust)
    proven = ts is not None and ts.intact and ts.valid and ts.trusted
    poe = ts.timestamp if proven else None
    signing_time = SigningTime(claimed=status.signer_reported_dt, timestamp=ts_info, proven=proven)
    revision = sig.signed_revision
    modifications = _modifications(status, later_fields, revision, revisions)
    coverage = _coverage(status.coverage)
    try:
        subfilter = str(sig.sig_object.get("/SubFilter"))
    except Exception:
        subfilter = None
    try:
        permission = sig.docmdp_level
    except Exception:
        permission = None
    is_certification = certification is not None and _same(certification.author_sig, sig.sig_object)
    docmdp = DocMdp(certification=is_certification, permission=permission.name if permission else None,
                    respected=status.docmdp_ok)
    integrity = Integrity(digest_ok=bool(status.intact), signature_ok=bool(status.valid),
                          digest_algorithm=status.md_algorithm, signature_algorithm=status.pkcs7_signature_mechanism)

    # Revocation: at signing time from the embedded data (when the chain validated with it), now from
    # the issuing CA's records.
    details = status.revocation_details
    if details is not None:
        at_signing = CertificateState("revoked", reason=_reason(details.revocation_reason),
                                      since=details.revocation_date, source="embedded")
    elif status.trusted and at_signing_checked:
        at_signing = CertificateState("good", source="embedded OCSP/CRL at " + (
            "the timestamp's time" if poe else "validation time"))
    else:
        at_signing = UNKNOWN
    now_state = _now_state(status_of, signer_cert)
    tsa_now = _now_state(status_of, ts.signing_cert) if ts is not None else None
    revocation = Revocation(at_signing_time=at_signing, now=now_state, tsa_now=tsa_now)

    # The indication, the first failure in ETSI order.
    indication, sub = PASSED, None
    if not status.intact:
        indication, sub = FAILED, "HASH_FAILURE"
        findings.append("the digest of the signed bytes does not match the signature: the signed content was altered")
    elif not status.valid:
        indication, sub = FAILED, "SIG_CRYPTO_FAILURE"
        findings.append("the signature value does not verify with the signer's public key")
    elif coverage == "PARTIAL":
        indication, sub = FAILED, "FORMAT_FAILURE"
        findings.extend(modifications.findings)
    elif not modifications.acceptable:
        indication, sub = FAILED, "FORMAT_FAILURE"
        findings.extend(modifications.findings)
    elif status.docmdp_ok is False:
        indication, sub = FAILED, "FORMAT_FAILURE"
        findings.append(f"the changes after signing break the DocMDP permission {docmdp.permission}")
    elif ts is not None and not (ts.intact and ts.valid):
        indication, sub = FAILED, "HASH_FAILURE" if not ts.intact else "SIG_CRYPTO_FAILURE"
        findings.append("the signature timestamp token does not verify")
    elif details is not None and poe is not None and details.revocation_date <= poe:
        indication, sub = FAILED, "REVOKED"
        whose = "a CA certificate in the chain" if details.ca_revoked else "the signer's certificate"
        findings.append(f"{whose} was revoked at {details.revocation_date.isoformat()}, before the signing time "
                        "the timestamp proves")
    elif _revoked_before(now_state, poe):
        indication, sub = FAILED, "REVOKED"
        findings.append(f"the signer's certificate is {now_state.status} since {now_state.since.isoformat()}, "
                        "before the signing time the timestamp proves")
    elif not status.trusted:
        indication = INDETERMINATE
        sub = status.trust_problem_indic.name if status.trust_problem_indic else "NO_CERTIFICATE_CHAIN_FOUND"
        findings.append(_trust_finding(sub))
    elif now_state.status in ("revoked", "suspended") and poe is None:
        indication = INDETERMINATE
        sub = "REVOKED_NO_POE" if now_state.status == "revoked" else "TRY_LATER"
        findings.append(f"the signer's certificate is {now_state.status} now, and no timestamp proves the signature "
                        "was made before")
    elif not status.seed_value_ok:
        indication, sub = INDETERMINATE, "SIG_CONSTRAINTS_FAILURE"
        findings.append("the signature does not meet the seed value constraints of its field")
    if indication == PASSED:
        findings.extend(modifications.findings)
        if now_state.status in ("revoked", "suspended"):
            findings.append(f"the signer's certificate is {now_state.status} now (since "
                            f"{now_state.since.isoformat() if now_state.since else '?'}), after the proven signing time")
    level = _level(subfilter, status, proven, at_signing_checked, context.dss, revision, doc_timestamps)
    return SignatureReport(
        field=name, indication=indication, sub_indication=sub, findings=tuple(findings),
        signer=_certificate_info(signer_cert), chain=chain, trust_anchor=anchor, signing_time=signing_time,
        revocation=revocation, integrity=integrity, coverage=coverage, modifications=modifications, docmdp=docmdp,
        level=level, subfilter=subfilter, revision=revision)


def _trust_finding(sub: str) -> str:
    return {
        "NO_CERTIFICATE_CHAIN_FOUND": "the signer's certificate does not chain to a trust anchor (untrusted)",
        "REVOKED_NO_POE": "the signer's certificate is revoked and no timestamp proves the signing time before that",
        "REVOKED_CA_NO_POE": "a CA certificate in the chain is revoked",
        "OUT_OF_BOUNDS_NO_POE": "the signer's certificate is expired or not yet valid at the validation time",
        "TRY_LATER": "no usable revocation data for the chain",
        "CHAIN_CONSTRAINTS_FAILURE": "the chain does not meet the constraints (key usage, extensions)",
    }.get(sub, f"the chain does not validate ({sub})")


def _revoked_before(state: CertificateState, poe: datetime | None) -> bool:
    return (state.status == "revoked" and state.since is not None and poe is not None and state.since <= poe)


def _level(subfilter, status, proven, at_signing_checked, dss, revision, doc_timestamps) -> str | None:
    if subfilter != "/ETSI.CAdES.detached" or not (status.intact and status.valid):
        return None
    if not proven:
        return "B-B"
    if not (at_signing_checked and status.trusted and dss is not None):
        return "B-T"
    if any(ts_revision > revision and ok for ts_revision, ok in doc_timestamps):
        return "B-LTA"
    return "B-LT"


def _reason(reason) -> str | None:
    try:
        return reason.human_friendly if reason is not None else None
    except Exception:
        return str(reason.native) if reason is not None else None


def _now_state(status_of: CertificateStatus | None, certificate: asn1_x509.Certificate) -> CertificateState:
    if status_of is None:
        return UNKNOWN
    try:
        return status_of(certificate.issuer.dump(), certificate.serial_number)
    except Exception:
        return UNKNOWN


def _same(a, b) -> bool:
    try:
        return a is b or a.get_object() is b or (a.container_ref == b.container_ref)
    except Exception:
        return False


def _certificate_info(cert: asn1_x509.Certificate) -> CertificateInfo:
    return _info(cert.dump())


@functools.lru_cache(maxsize=512)
def _info(der: bytes) -> CertificateInfo:
    parsed = _asn1(der)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. cryptography on a non-positive serial number
            loaded = x509.load_der_x509_certificate(der)
        subject, issuer = loaded.subject.rfc4514_string(), loaded.issuer.rfc4514_string()
    except Exception:
        subject, issuer = parsed.subject.human_friendly, parsed.issuer.human_friendly
    validity = parsed["tbs_certificate"]["validity"]
    return CertificateInfo(subject=subject, serial=f"{parsed.serial_number:x}", issuer=issuer,
                           not_before=validity["not_before"].native, not_after=validity["not_after"].native)


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


@functools.lru_cache(maxsize=512)
def _asn1(der: bytes) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(der)


# --- speed and quiet -------------------------------------------------------------------------------
#
# Two pure functions of pyHanko and asn1crypto replaced by equivalents (measured: ~45% of a B-LT
# license's verification): pyHanko reads a hex string a byte per call (the 32 KB /Contents of every
# signature), asn1crypto prepares every name of every certificate with RFC 4518 string preparation
# again for each new certificate object (the same CA names in every document).

_slow_hex = generic.read_hex_string_from_stream
_WHITESPACE = re.compile(rb"[ \n\r\t\f\x00]+")
_HEX = re.compile(rb"[0-9a-fA-F]*")


def _read_hex_string(stream):
    """``generic.read_hex_string_from_stream``, reading up to the closing ``>`` in one go."""
    start = stream.tell()
    stream.read(1)
    chunks = []
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            raise misc.PdfStreamError("Stream ended prematurely")
        end = chunk.find(b">")
        if end >= 0:
            chunks.append(chunk[:end])
            stream.seek(end + 1 - len(chunk), 1)
            break
        chunks.append(chunk)
    data = _WHITESPACE.sub(b"", b"".join(chunks))
    if b"%" in data:  # comments inside: the original handles them
        stream.seek(start)
        return _slow_hex(stream)
    if _HEX.fullmatch(data) is None:
        raise misc.PdfStreamError("Unexpected token in hex string")
    if len(data) % 2:
        data += b"0"
    return generic.pdf_string(binascii.unhexlify(data))


generic.read_hex_string_from_stream = _read_hex_string

_slow_prep = asn1_x509.NameTypeAndValue._ldap_string_prep
_prepared = functools.lru_cache(maxsize=4096)(lambda string: _slow_prep(None, string))
asn1_x509.NameTypeAndValue._ldap_string_prep = lambda self, string: _prepared(string)

_verifying: contextvars.ContextVar[bool] = contextvars.ContextVar("eauth_verifying_pdf", default=False)


class _DuringVerification(logging.Filter):
    """pyHanko logs a warning with a traceback for every untrusted or broken signature: during a
    verification that is what the report says, not something for the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING or not _verifying.get()


for _logger in ("pyhanko.sign.validation.generic_cms", "pyhanko.sign.validation.pdf_embedded",
                "pyhanko.sign.validation.dss", "pyhanko.pdf_utils.reader", "pyhanko.sign.diff_analysis.policies",
                "pyhanko.sign.general", "pyhanko_certvalidator.validate", "pyhanko.pdf_utils.generic"):
    logging.getLogger(_logger).addFilter(_DuringVerification())
