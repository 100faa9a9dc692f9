"""The OCSP responder (RFC 6960): request DER in, signed response DER out.

Each CA (root, citizen, enterprise, seal) answers through its own delegated responder ``ocsp-<CA>``
(issued by that CA, with id-pkix-ocsp-nocheck); the response names it by key hash and carries its
certificate. Status comes from storage on every request (one query), so a suspension or revocation
is answered at once, by every process. A response to a request without nonce is kept in storage and
reused until shortly before its nextUpdate; a status change deletes it in the same transaction.

Requests are read and responses written here with a small strict DER reader/writer rather than with
cryptography's OCSP classes, for four reasons: a request may list several certificates (RFC 6960
§4.1.1; cryptography reads only one and its builder writes only one); each CertID is echoed exactly
as the client sent it (SHA-1 with NULL parameters or SHA-256 without, as OpenSSL sends them; some
clients compare the bytes); the invalidity date goes into ``singleExtensions`` (RFC 6960 §4.4.5, CRL
entry extensions), which cryptography's builder cannot write; and speed: asn1crypto takes ~0.4 ms to
read a request, this reader ~6 µs. What the reader accepts is narrow: DER only (definite, minimal
lengths, no trailing bytes), the structures of RFC 6960 §4.1.1 and nothing else; anything else is a
``malformedRequest``. Responses are checked in the tests by cryptography, OpenSSL and pkilint.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Protocol

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authority import HIERARCHY, Clock, utcnow
from ca.records import AuthorityRecord
from eauth.der import tlv
from eauth.errors import EauthError, ErrorKind
from keys.base import KeyStore, Signer

log = logging.getLogger("eauth.ocsp")

#: Most CertIDs answered in one request; a longer list is refused as malformed (bounded work per request).
MAX_CERT_IDS = 16
#: RFC 9654 (which replaced RFC 8954's 32): a nonce of 1 to 128 octets; any other length is a malformedRequest.
MAX_NONCE_OCTETS = 128


class ResponseStatus(IntEnum):
    """OCSPResponseStatus (RFC 6960 §4.2.1)."""

    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6


# --- storage -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A signed response without nonce, as stored for reuse."""

    this_update: datetime
    next_update: datetime
    der: bytes


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    """What storage knows about one certificate a CA issued.

    ``status``: valid | suspended | revoked. ``cacheable``: whether a response may be stored for it
    (end-entity certificates; not the platform's own CA certificates, queried rarely).
    """

    status: str
    revoked_at: datetime | None
    reason: str | None
    invalidity_date: datetime | None
    cached: CachedResponse | None = None
    cacheable: bool = True


class OcspStore(Protocol):
    """The storage the responder needs (implemented in ``store.ocsp_store``)."""

    def lookup(self, issuer: str, serials: Sequence[str]) -> dict[str, CertificateStatus]:
        """The status of each of ``serials`` (lower-case hex) that CA ``issuer`` issued, with the cached
        response if there is one, in one query; a serial it never issued is absent from the result."""
        ...

    def keep(self, issuer: str, serial: str, seen: CertificateStatus, response: CachedResponse) -> None:
        """Store ``response`` for reuse, replacing any other, unless the certificate's status is no
        longer ``seen`` (changed since it was read): a response must never outlive a status change."""
        ...


# --- DER -----------------------------------------------------------------------------------------


class MalformedRequest(Exception):
    """The request is not a DER OCSPRequest we can read."""


def _read(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start, end) of the content of the DER TLV at ``pos``; strict: one-byte tags, definite
    minimal lengths, within ``end``."""
    if pos + 2 > end:
        raise MalformedRequest("truncated")
    tag, length = buf[pos], buf[pos + 1]
    if tag & 0x1F == 0x1F:
        raise MalformedRequest("multi-byte tag")
    pos += 2
    if length & 0x80:
        octets = length & 0x7F
        if octets == 0 or octets > 3 or pos + octets > end:
            raise MalformedRequest("indefinite or oversized length")
        length = int.from_bytes(buf[pos:pos + octets], "big")
        if length < 0x80 or buf[pos] == 0:
            raise MalformedRequest("length not in minimal form")
        pos += octets
    if pos + length > end:
        raise MalformedRequest("truncated")
    return tag, pos, pos + length


def _expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _read(buf, pos, end)
    if found != tag:
        raise MalformedRequest(f"expected tag {tag:#x}, found {found:#x}")
    return start, stop




def _time(moment: datetime) -> bytes:
    """GeneralizedTime (RFC 5280 §4.1.2.5.2: UTC, seconds, no fraction)."""
    m = moment  # formatted by hand: 4× faster than strftime, which showed in profiles
    return b"\x18\x0f" + ("%04d%02d%02d%02d%02d%02dZ" % (m.year, m.month, m.day, m.hour, m.minute, m.second)).encode()


_SEQUENCE, _OCTET_STRING, _INTEGER, _OID, _BOOLEAN = 0x30, 0x04, 0x02, 0x06, 0x01
_OID_NONCE = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce, encoded with tag and length
_OID_BASIC = bytes.fromhex("06092b0601050507300101")  # id-pkix-ocsp-basic
_OID_INVALIDITY_DATE = bytes.fromhex("0603551d18")
_NULL = b"\x05\x00"

#: CertID hash algorithms (encoded OID → hashlib name) that issuers are recognised by.
HASH_ALGORITHMS = {
    bytes.fromhex("06052b0e03021a"): "sha1",
    bytes.fromhex("0609608648016503040204"): "sha224",
    bytes.fromhex("0609608648016503040201"): "sha256",
    bytes.fromhex("0609608648016503040202"): "sha384",
    bytes.fromhex("0609608648016503040203"): "sha512",
}

_SIGNATURE_ALGORITHMS = {
    False: tlv(_SEQUENCE, bytes.fromhex("06082a8648ce3d040302")),  # ecdsa-with-SHA256, no parameters
    True: tlv(_SEQUENCE, bytes.fromhex("06092a864886f70d01010b") + _NULL),  # sha256WithRSAEncryption
}

#: CRLReason codes (RFC 5280 §5.3.1) by the names the lifecycle stores; unspecified is left out, as in CRLs.
REASON_CODES = {
    "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3, "superseded": 4, "cessationOfOperation": 5,
    "certificateHold": 6, "privilegeWithdrawn": 9, "aACompromise": 10,
}


@dataclass(frozen=True, slots=True)
class CertId:
    """One CertID of a request: ``der`` is the whole TLV as received, echoed in the response."""

    der: bytes
    algorithm: bytes  # the encoded hash algorithm OID
    name_hash: bytes
    key_hash: bytes
    serial: int


@dataclass(frozen=True, slots=True)
class OcspRequest:
    cert_ids: tuple[CertId, ...]
    nonce: bytes | None  # the nonce extension's extnValue (an encoded OCTET STRING), echoed as is


def _integer(buf: bytes, start: int, stop: int) -> int:
    content = buf[start:stop]
    if not content or (len(content) > 1 and (
            (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80))):
        raise MalformedRequest("INTEGER not in minimal form")
    return int.from_bytes(content, "big", signed=True)


def _cert_id(buf: bytes, pos: int, end: int) -> tuple[CertId, int]:
    start, stop = _expect(buf, pos, end, _SEQUENCE)
    alg_start, alg_stop = _expect(buf, start, stop, _SEQUENCE)
    tag, oid_start, oid_stop = _read(buf, alg_start, alg_stop)
    if tag != _OID or oid_stop == oid_start:
        raise MalformedRequest("hash algorithm is not an OID")
    if buf[oid_stop:alg_stop] not in (b"", _NULL):
        raise MalformedRequest("hash algorithm parameters other than NULL")
    name_start, name_stop = _expect(buf, alg_stop, stop, _OCTET_STRING)
    key_start, key_stop = _expect(buf, name_stop, stop, _OCTET_STRING)
    serial_start, serial_stop = _expect(buf, key_stop, stop, _INTEGER)
    if serial_stop != stop:
        raise MalformedRequest("trailing data in CertID")
    cert_id = CertId(buf[pos:stop], buf[alg_start:oid_stop], buf[name_start:name_stop], buf[key_start:key_stop],
                     _integer(buf, serial_start, serial_stop))
    return cert_id, stop


def _extensions(buf: bytes, start: int, stop: int) -> dict[bytes, tuple[bool, bytes]]:
    """Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension, as {encoded OID: (critical, extnValue content)}."""
    seq_start, seq_stop = _expect(buf, start, stop, _SEQUENCE)
    if seq_stop != stop or seq_start == seq_stop:
        raise MalformedRequest("bad extensions")
    found: dict[bytes, tuple[bool, bytes]] = {}
    pos = seq_start
    while pos < seq_stop:
        ext_start, ext_stop = _expect(buf, pos, seq_stop, _SEQUENCE)
        tag, oid_start, oid_stop = _read(buf, ext_start, ext_stop)
        if tag != _OID or oid_stop == oid_start:
            raise MalformedRequest("extension without OID")
        oid = buf[ext_start:oid_stop]
        critical = False
        tag, value_start, value_stop = _read(buf, oid_stop, ext_stop)
        if tag == _BOOLEAN:
            if value_stop - value_start != 1 or buf[value_start] not in (0, 0xFF):
                raise MalformedRequest("bad BOOLEAN")
            critical = buf[value_start] == 0xFF
            tag, value_start, value_stop = _read(buf, value_stop, ext_stop)
        if tag != _OCTET_STRING or value_stop != ext_stop or oid in found:
            raise MalformedRequest("bad extension")
        found[oid] = (critical, buf[value_start:value_stop])
        pos = ext_stop
    return found


def parse_request(der: bytes) -> OcspRequest:
    """Read an OCSPRequest (RFC 6960 §4.1.1); MalformedRequest for anything that is not one.

    The optional signature is not checked (anyone may ask; the answer is public) and requestorName is
    ignored. An unrecognised critical extension makes the request malformed, as does a nonce that is
    not an OCTET STRING of 1 to 128 octets (RFC 9654).
    """
    start, stop = _expect(der, 0, len(der), _SEQUENCE)
    if stop != len(der):
        raise MalformedRequest("trailing data")
    tbs_start, tbs_stop = _expect(der, start, stop, _SEQUENCE)
    if tbs_stop != stop:
        _, _, signature_stop = _read(der, tbs_stop, stop)  # optionalSignature [0]: skipped, not checked
        if der[tbs_stop] != 0xA0 or signature_stop != stop:
            raise MalformedRequest("trailing data after tbsRequest")
    tag, content_start, pos = _read(der, tbs_start, tbs_stop)
    if tag == 0xA0:  # version [0] EXPLICIT, DEFAULT v1: only v1 exists
        version_start, version_stop = _expect(der, content_start, pos, _INTEGER)
        if version_stop != pos or _integer(der, version_start, version_stop) != 0:
            raise MalformedRequest("unsupported version")
        tag, content_start, pos = _read(der, pos, tbs_stop)
    if tag == 0xA1:  # requestorName [1] EXPLICIT GeneralName
        tag, content_start, pos = _read(der, pos, tbs_stop)
    if tag != _SEQUENCE or content_start == pos:
        raise MalformedRequest("no requestList")
    cert_ids = []
    list_pos, list_stop = content_start, pos
    while list_pos < list_stop:
        request_start, request_stop = _expect(der, list_pos, list_stop, _SEQUENCE)
        cert_id, after = _cert_id(der, request_start, request_stop)
        if after != request_stop:  # singleRequestExtensions [0] EXPLICIT: none is understood
            tag, ext_start, ext_stop = _read(der, after, request_stop)
            if tag != 0xA0 or ext_stop != request_stop:
                raise MalformedRequest("bad Request")
            if any(critical for critical, _ in _extensions(der, ext_start, ext_stop).values()):
                raise MalformedRequest("unrecognised critical single request extension")
        cert_ids.append(cert_id)
        if len(cert_ids) > MAX_CERT_IDS:
            raise MalformedRequest(f"more than {MAX_CERT_IDS} certificates in one request")
        list_pos = request_stop
    nonce = None
    if pos != tbs_stop:
        tag, ext_start, ext_stop = _read(der, pos, tbs_stop)
        if tag != 0xA2 or ext_stop != tbs_stop:
            raise MalformedRequest("bad requestExtensions")
        extensions = _extensions(der, ext_start, ext_stop)
        if any(critical for oid, (critical, _) in extensions.items() if oid != _OID_NONCE):
            raise MalformedRequest("unrecognised critical request extension")
        if _OID_NONCE in extensions:
            nonce = extensions[_OID_NONCE][1]
            value_start, value_stop = _expect(nonce, 0, len(nonce), _OCTET_STRING)
            if value_stop != len(nonce) or not 1 <= value_stop - value_start <= MAX_NONCE_OCTETS:
                raise MalformedRequest("nonce is not an OCTET STRING of 1 to 128 octets")
    return OcspRequest(tuple(cert_ids), nonce)


def error_response(status: ResponseStatus) -> bytes:
    """An unsigned OCSPResponse with an error status and no responseBytes."""
    return tlv(_SEQUENCE, tlv(0x0A, bytes((status,))))


def _first_cert_id(response: bytes) -> bytes:
    """The CertID (as encoded) of the first SingleResponse of a successful response we made."""
    start, stop = _expect(response, 0, len(response), _SEQUENCE)
    _, _, pos = _read(response, start, stop)  # responseStatus
    bytes_start, bytes_stop = _expect(response, pos, stop, 0xA0)
    start, stop = _expect(response, bytes_start, bytes_stop, _SEQUENCE)
    _, _, pos = _read(response, start, stop)  # responseType
    start, stop = _expect(response, pos, stop, _OCTET_STRING)  # the BasicOCSPResponse
    start, stop = _expect(response, start, stop, _SEQUENCE)
    start, stop = _expect(response, start, stop, _SEQUENCE)  # tbsResponseData
    _, _, pos = _read(response, start, stop)  # responderID
    _, _, pos = _read(response, pos, stop)  # producedAt
    start, stop = _expect(response, pos, stop, _SEQUENCE)  # responses
    start, stop = _expect(response, start, stop, _SEQUENCE)  # the first SingleResponse
    _, _, cert_id_stop = _read(response, start, stop)
    return response[start:cert_id_stop]


# --- responder -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """A response and what the HTTP layer needs to know for caching headers.

    ``this_update``/``next_update`` are set for a successful response to a request without nonce,
    which any HTTP cache may keep until ``next_update``; None otherwise.
    """

    der: bytes
    status: ResponseStatus
    this_update: datetime | None = None
    next_update: datetime | None = None


@dataclass(frozen=True, slots=True, eq=False)
class _Responder:
    """A CA as the responder sees it: how CertIDs name it, and the delegated signer answering for it."""

    ca: str
    signer: Signer
    responder_id: bytes  # ResponderID byKey, encoded
    signature_algorithm: bytes  # encoded AlgorithmIdentifier
    certs: bytes  # the encoded [0] EXPLICIT SEQUENCE OF Certificate: the responder's certificate


def _issuer_hashes(certificate_der: bytes) -> Iterable[tuple[bytes, bytes, bytes]]:
    """(hash OID, issuerNameHash, issuerKeyHash) of a CA certificate, for each CertID hash algorithm:
    the hash of its DER subject and of its subjectPublicKey BIT STRING value (RFC 6960 §4.1.1)."""
    cert = asn1_x509.Certificate.load(certificate_der)
    subject = cert.subject.dump()
    key = cert.public_key["public_key"].contents[1:]  # past the unused-bits octet
    for oid, name in HASH_ALGORITHMS.items():
        yield oid, hashlib.new(name, subject).digest(), hashlib.new(name, key).digest()


def _responder_key_hash(certificate_der: bytes) -> bytes:
    cert = asn1_x509.Certificate.load(certificate_der)
    return hashlib.sha1(cert.public_key["public_key"].contents[1:]).digest()


class OcspResponder:
    """Answers OCSP requests for every CA that has a delegated responder. Built once per process:
    the issuer hashes, responder IDs and signers are prepared here; nothing else is kept in memory."""

    def __init__(
        self,
        authorities: Iterable[AuthorityRecord],
        keys: KeyStore,
        *,
        validity: timedelta,
        reuse_margin: timedelta,
        clock: Clock = utcnow,
    ) -> None:
        if not timedelta(0) < reuse_margin < validity:
            raise ValueError("the reuse margin must be positive and shorter than the validity")
        self.validity = validity
        self.reuse_margin = reuse_margin
        self.clock = clock
        records = {record.name: record for record in authorities}
        self._issuers: dict[tuple[bytes, bytes, bytes], _Responder] = {}
        for spec in HIERARCHY:
            if spec.role != "ocsp" or spec.name not in records or spec.parent not in records:
                continue
            responder = records[spec.name]
            ca = records[spec.parent]
            signer = keys.signer(responder.key_label)
            responder_der = responder.certificate.public_bytes(Encoding.DER)
            entry = _Responder(
                ca=ca.name,
                signer=signer,
                responder_id=tlv(0xA2, tlv(_OCTET_STRING, _responder_key_hash(responder_der))),
                signature_algorithm=_SIGNATURE_ALGORITHMS[signer.algorithm.is_rsa],
                certs=tlv(0xA0, tlv(_SEQUENCE, responder_der)),
            )
            for key in _issuer_hashes(ca.certificate.public_bytes(Encoding.DER)):
                self._issuers[key] = entry

    def respond(self, request: bytes, store: OcspStore) -> OcspAnswer:
        """The response to ``request`` (DER). Never raises: a request that can't be read is answered
        ``malformedRequest``, one for a CA we don't answer for ``unauthorized`` (RFC 6960 §2.3), a
        storage failure ``tryLater`` and anything unexpected ``internalError``."""
        try:
            return self._respond(parse_request(request), store)
        except MalformedRequest as exc:
            log.debug("malformed OCSP request: %s", exc)
            return OcspAnswer(error_response(ResponseStatus.MALFORMED_REQUEST), ResponseStatus.MALFORMED_REQUEST)
        except Exception as exc:
            if isinstance(exc, EauthError) and exc.kind is ErrorKind.UNAVAILABLE:
                log.warning("OCSP answered tryLater: %s", exc.detail)
                return OcspAnswer(error_response(ResponseStatus.TRY_LATER), ResponseStatus.TRY_LATER)
            log.exception("OCSP request failed")
            return OcspAnswer(error_response(ResponseStatus.INTERNAL_ERROR), ResponseStatus.INTERNAL_ERROR)

    def _respond(self, request: OcspRequest, store: OcspStore) -> OcspAnswer:
        responders = [self._issuers.get((c.algorithm, c.name_hash, c.key_hash)) for c in request.cert_ids]
        responder = responders[0]
        if responder is None or any(r is not responder for r in responders):
            # A CA we don't answer for, or certificates of several of our CAs in one request (one
            # responder signs a response, and only the one its CA certified is authorised for each).
            return OcspAnswer(error_response(ResponseStatus.UNAUTHORIZED), ResponseStatus.UNAUTHORIZED)
        serials = [f"{c.serial:x}" for c in request.cert_ids]
        statuses = store.lookup(responder.ca, [s for s in serials if not s.startswith("-")])
        answers = [(c, statuses.get(s)) for c, s in zip(request.cert_ids, serials)]
        now = self.clock()
        if len(answers) > 1 or request.nonce is not None:  # neither reused nor kept
            return OcspAnswer(self._sign(responder, answers, now, request.nonce), ResponseStatus.SUCCESSFUL)
        ((cert_id, status),) = answers
        cached = status.cached if status is not None else None
        fresh = cached is not None and now < cached.next_update - self.reuse_margin
        if fresh and _first_cert_id(cached.der) == cert_id.der:
            return OcspAnswer(cached.der, ResponseStatus.SUCCESSFUL, cached.this_update, cached.next_update)
        now = now.replace(microsecond=0)
        next_update = now + self.validity
        der = self._sign(responder, answers, now, None)
        if status is not None and status.cacheable and not fresh:
            # A second request for the same certificate, in any process, reuses this one. When another
            # variant of the CertID (say SHA-256 where the stored one is SHA-1) is already stored and
            # still fresh, it stays: the two would otherwise replace each other on every request.
            try:
                store.keep(responder.ca, serials[0], status, CachedResponse(now, next_update, der))
            except Exception:  # the answer is right without being kept: give it
                log.warning("OCSP response for %s/%s not kept", responder.ca, serials[0], exc_info=True)
        return OcspAnswer(der, ResponseStatus.SUCCESSFUL, now, next_update)

    def _sign(self, responder: _Responder, answers: Sequence[tuple[CertId, CertificateStatus | None]],
              now: datetime, nonce: bytes | None) -> bytes:
        """The signed response: producedAt = thisUpdate = ``now``, nextUpdate = ``now`` + validity."""
        produced_at = _time(now)
        updates = produced_at + tlv(0xA0, _time(now + self.validity))
        single_responses = b"".join(
            tlv(_SEQUENCE, cert_id.der + _cert_status(status) + updates + _single_extensions(status))
            for cert_id, status in answers
        )
        tbs = responder.responder_id + produced_at + tlv(_SEQUENCE, single_responses)
        if nonce is not None:
            tbs += tlv(0xA1, tlv(_SEQUENCE, tlv(_SEQUENCE, _OID_NONCE + tlv(_OCTET_STRING, nonce))))
        tbs = tlv(_SEQUENCE, tbs)
        signature = responder.signer.sign(tbs)
        basic = tlv(_SEQUENCE, tbs + responder.signature_algorithm + tlv(0x03, b"\x00" + signature) + responder.certs)
        response_bytes = tlv(0xA0, tlv(_SEQUENCE, _OID_BASIC + tlv(_OCTET_STRING, basic)))
        return tlv(_SEQUENCE, b"\x0a\x01\x00" + response_bytes)


_GOOD, _UNKNOWN = b"\x80\x00", b"\x82\x00"  # [0] IMPLICIT NULL, [2] IMPLICIT NULL


def _cert_status(status: CertificateStatus | None) -> bytes:
    if status is None:
        return _UNKNOWN  # a serial this CA never issued
    if status.status == "valid":
        return _GOOD
    # revoked, or suspended: revoked with reason certificateHold, as in the CRL
    info = _time(status.revoked_at)
    code = REASON_CODES.get(status.reason or "")
    if code is not None:
        info += tlv(0xA0, bytes((0x0A, 1, code)))
    return tlv(0xA1, info)


def _single_extensions(status: CertificateStatus | None) -> bytes:
    """The invalidity date of a revoked certificate, as in its CRL entry (RFC 6960 §4.4.5, RFC 5280 §5.3.2)."""
    if status is None or status.status == "valid" or status.invalidity_date is None:
        return b""
    extension = tlv(_SEQUENCE, _OID_INVALIDITY_DATE + tlv(_OCTET_STRING, _time(status.invalidity_date)))
    return tlv(0xA1, tlv(_SEQUENCE, extension))
