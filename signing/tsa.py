"""The platform's RFC 3161 time-stamping authority: a DER TimeStampReq in, a DER TimeStampResp out.

A token is CMS SignedData (RFC 5652) over a TSTInfo, signed by the TSA certificate's key through the
``Signer`` interface (file or PKCS#11; the key is never asked for). Signed attributes: content-type
(id-ct-TSTInfo), message-digest, and ESS signing-certificate-v2 (RFC 5035/5816) naming the TSA
certificate by its SHA-256 hash and issuer/serial. The CMS digest is always SHA-256 and the
signature ecdsa-with-SHA256 or sha256WithRSAEncryption, whatever hash the request's imprint uses.

The TSA keeps no state: serial numbers are 128 random bits (a collision needs ~2^64 tokens), so any
number of processes answer independently. Nothing the caller sends makes it raise: a request it can't
or won't serve gets a ``rejection`` response with the RFC 3161 failInfo saying why, and a failure of
its own (key store down) gets ``systemFailure``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from eauth.der import tlv
from eauth.errors import NotInitialized
from eauth.oids import TSA_POLICY_V1
from keys.base import Signer

log = logging.getLogger("eauth.tsa")

Clock = Callable[[], datetime]

#: Message-imprint hash algorithms accepted, with their digest lengths. SHA-1 and MD5 are refused
#: (``badAlg``): a collision lets one token vouch for two documents.
ACCEPTED_HASHES: dict[str, int] = {
    "2.16.840.1.101.3.4.2.1": 32,  # sha256
    "2.16.840.1.101.3.4.2.2": 48,  # sha384
    "2.16.840.1.101.3.4.2.3": 64,  # sha512
}
#: Longest nonce echoed; RFC 3161 sets no bound, clients use 64 to 160 bits.
MAX_NONCE_BITS = 1024

_NULL = core.Null().dump()
_GRANTED = tsp.PKIStatusInfo({"status": "granted"}).dump()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class TsaConfig:
    """What a token asserts besides the time."""

    #: The TSA policy under which every token is issued (TSTInfo.policy); a request asking for another
    #: policy is refused with ``unacceptedPolicy``.
    policy_oid: str = TSA_POLICY_V1
    #: Accuracy of genTime, in whole seconds (TSTInfo.accuracy); genTime itself is cut to the second.
    accuracy_seconds: int = 1
    #: Name the TSA in TSTInfo.tsa (its certificate's subject, as a directoryName).
    include_tsa_name: bool = True


class _Rejected(Exception):
    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


@dataclass(frozen=True, slots=True)
class _Request:
    """The parts of a TimeStampReq that a token depends on, checked."""

    hash_oid: str
    null_parameters: bool  # the imprint's AlgorithmIdentifier had NULL parameters (else none)
    digest: bytes
    nonce: int | None
    cert_req: bool


class TimeStampResp(tsp.TimeStampResp):
    """asn1crypto's TimeStampResp with timeStampToken OPTIONAL, as RFC 3161 has it: asn1crypto's own
    can neither build nor parse a rejection (which has no token). Use this one to read responses."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def rejection(fail_info: str, text: str) -> bytes:
    """A DER TimeStampResp with status ``rejection``; ``fail_info`` an asn1crypto PKIFailureInfo name."""
    status = tsp.PKIStatusInfo({"status": "rejection", "status_string": [text], "fail_info": {fail_info}})
    return TimeStampResp({"status": status}).dump()


def _check(request: tsp.TimeStampReq, policy_oid: str) -> _Request:
    """The request's content, or _Rejected. Any parse error of a lazily parsed field counts as malformed."""
    try:
        version = request["version"].native
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]
        hash_oid = algorithm["algorithm"].dotted
        parameters = algorithm["parameters"]  # asn1crypto parses SHA-2 parameters as NULL, or fails
        digest = imprint["hashed_message"].native
        requested_policy = request["req_policy"]
        requested_policy = None if isinstance(requested_policy, core.Void) else requested_policy.dotted
        nonce = request["nonce"]
        nonce_value = None if isinstance(nonce, core.Void) else nonce.native
        cert_req = bool(request["cert_req"].native)
        extensions = request["extensions"]
        has_extensions = not isinstance(extensions, core.Void) and len(extensions) > 0
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError... on bad DER
        raise _Rejected("bad_data_format", f"malformed TimeStampReq: {_first_line(exc)}") from None
    if version != "v1":
        raise _Rejected("bad_data_format", f"unsupported TimeStampReq version {version}")
    length = ACCEPTED_HASHES.get(hash_oid)
    if length is None:
        name = algorithm["algorithm"].native
        raise _Rejected("bad_alg", f"hash algorithm {name} not accepted; use SHA-256, SHA-384 or SHA-512")
    if not isinstance(digest, bytes) or len(digest) != length:
        got = len(digest) if isinstance(digest, bytes) else 0
        raise _Rejected("bad_data_format", f"message imprint is {got} bytes, its algorithm gives {length}")
    if requested_policy is not None and requested_policy != policy_oid:
        raise _Rejected("unaccepted_policy", f"policy {requested_policy} not offered; this TSA uses {policy_oid}")
    if has_extensions:
        raise _Rejected("unaccepted_extensions", "no TimeStampReq extension is supported")
    if nonce_value is not None and not isinstance(nonce_value, int):
        raise _Rejected("bad_data_format", "nonce is not an integer")
    if nonce_value is not None and abs(nonce_value).bit_length() > MAX_NONCE_BITS:
        raise _Rejected("bad_data_format", f"nonce longer than {MAX_NONCE_BITS} bits")
    return _Request(hash_oid, not isinstance(parameters, core.Void), digest, nonce_value, cert_req)


def _first_line(exc: Exception) -> str:
    """asn1crypto's message without the lines naming its own classes."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _has_critical_time_stamping(certificate: x509.Certificate) -> bool:
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return False
    return eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


class TimeStampAuthority:
    """Answers time-stamp requests with tokens signed by ``signer`` for ``certificate``.

    ``chain`` are the certificates sent with the TSA's own when the request sets certReq (the issuing
    CA; the root is left out, relying parties have it). Everything that is the same for each token is
    built once here.
    """

    def __init__(
        self,
        signer: Signer,
        certificate: x509.Certificate,
        *,
        chain: Sequence[x509.Certificate] = (),
        config: TsaConfig = TsaConfig(),
        clock: Clock = _utcnow,
    ) -> None:
        spki = PublicFormat.SubjectPublicKeyInfo
        if signer.public_key.public_bytes(Encoding.DER, spki) != certificate.public_key().public_bytes(Encoding.DER, spki):
            raise NotInitialized(f"key {signer.label!r} is not the key of the TSA certificate")
        if not _has_critical_time_stamping(certificate):
            raise NotInitialized("the TSA certificate lacks a critical extended key usage of timeStamping alone")
        if config.accuracy_seconds < 1:
            raise NotInitialized("TSA accuracy must be at least one second")
        self.signer = signer
        self.certificate = certificate
        self.config = config
        self.clock = clock
        # Everything that is the same in every token, DER-encoded once (asn1crypto); a token is then
        # put together from these and its few own values by concatenation: building and dumping the
        # CMS structure with asn1crypto took ~17 ms a token, over 300 times the ECDSA signature.
        policy = core.ObjectIdentifier(config.policy_oid).dump()  # ValueError for a malformed OID
        der = certificate.public_bytes(Encoding.DER)
        tsa_cert = asn1_x509.Certificate.load(der)
        issuer_serial = {
            "issuer": [asn1_x509.GeneralName({"directory_name": tsa_cert.issuer})],
            "serial_number": tsa_cert.serial_number,
        }
        # ESSCertIDv2.hashAlgorithm left out: its DEFAULT is SHA-256, and DER omits a default value.
        ess = tsp.SigningCertificateV2(
            {"certs": [tsp.ESSCertIDv2({"cert_hash": hashlib.sha256(der).digest(), "issuer_serial": issuer_serial})]}
        )
        sid = cms.SignerIdentifier(
            {"issuer_and_serial_number": {"issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number}}
        )
        if signer.algorithm.is_rsa:
            # RFC 4055 §5: sha256WithRSAEncryption carries NULL parameters.
            signature_algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
        else:
            # RFC 5758 §3.2: ecdsa-with-SHA256 has its parameters absent.
            signature_algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
        # RFC 5754 §2: SHA-2 AlgorithmIdentifiers are generated with absent parameters.
        sha256 = _sequence(core.ObjectIdentifier("2.16.840.1.101.3.4.2.1").dump())
        certificates = b"".join(sorted([der] + [c.public_bytes(Encoding.DER) for c in chain]))  # DER SET OF order
        tsa_name = asn1_x509.GeneralName({"directory_name": tsa_cert.subject}).dump()

        self._tst_head = _integer(1) + policy  # version v1, policy
        self._tst_tail = _sequence(_integer(config.accuracy_seconds))  # accuracy {seconds}
        self._tsa_name = tlv(0xA0, tsa_name) if config.include_tsa_name else b""  # [0] EXPLICIT GeneralName
        self._attr_content_type = cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump()
        self._attr_signing_certificate = cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]}).dump()
        self._attr_message_digest_head = cms.ObjectIdentifier("1.2.840.113549.1.9.4").dump()  # id-messageDigest
        self._signer_info_head = _integer(1) + sid.dump() + sha256  # version v1, sid, digestAlgorithm
        self._signature_algorithm = signature_algorithm.dump()
        self._signed_data_head = _integer(3) + tlv(0x31, sha256)  # version v3, digestAlgorithms
        self._certificates = tlv(0xA0, certificates)  # [0] IMPLICIT CertificateSet
        self._imprint_algorithms = {
            (oid, null): _sequence(core.ObjectIdentifier(oid).dump() + (_NULL if null else b""))
            for oid in ACCEPTED_HASHES for null in (False, True)
        }

    # -- answering -------------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """The DER TimeStampResp for a DER TimeStampReq (HTTP body). Never raises."""
        try:
            request = tsp.TimeStampReq.load(bytes(request_der), strict=True)
        except Exception as exc:
            return rejection("bad_data_format", f"not a DER TimeStampReq: {_first_line(exc)}")
        return self.respond_to(request)

    def respond_to(self, request: tsp.TimeStampReq) -> bytes:
        """The DER TimeStampResp for a parsed request (in process, e.g. from pyHanko). Never raises."""
        try:
            checked = _check(request, self.config.policy_oid)
        except _Rejected as refused:
            return rejection(refused.fail_info, refused.text)
        try:
            tst_info = self.tst_info(checked)
            return _sequence(_GRANTED + self.sign_tst_info(tst_info, include_certificates=checked.cert_req))
        except Exception:
            log.exception("time-stamp token could not be made")
            return rejection("system_failure", "the time-stamping authority failed; try again later")

    def token_for(self, digest: bytes, hash_oid: str) -> bytes:
        """A DER time-stamp token over ``digest`` (a ``hash_oid`` digest) with the TSA's certificates, for
        callers in process (PAdES signatures and document timestamps): no request to build and parse,
        and no nonce, which only guards a reply crossing a network. ValueError for a hash not accepted."""
        if ACCEPTED_HASHES.get(hash_oid) != len(digest):
            raise ValueError(f"not a digest of an accepted hash algorithm: {hash_oid}, {len(digest)} bytes")
        request = _Request(hash_oid, False, digest, None, True)
        return self.sign_tst_info(self.tst_info(request), include_certificates=True)

    def tst_info(self, request: _Request) -> bytes:
        """A fresh DER TSTInfo (RFC 3161 §2.4.2) for a checked request: now, a new serial, our policy."""
        gen_time = self.clock().astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ").encode()
        serial = int.from_bytes(secrets.token_bytes(16), "big") or 1
        # The imprint as the request had it (same algorithm, NULL parameters or none, same digest).
        imprint = _sequence(self._imprint_algorithms[request.hash_oid, request.null_parameters]
                            + tlv(0x04, request.digest))
        return _sequence(
            self._tst_head
            + imprint
            + _integer(serial)
            + tlv(0x18, gen_time)  # GeneralizedTime, whole seconds
            + self._tst_tail
            + (b"" if request.nonce is None else _integer(request.nonce))
            + self._tsa_name
        )

    def sign_tst_info(self, tst_info: bytes, *, include_certificates: bool) -> bytes:
        """The DER time-stamp token (ContentInfo with SignedData, RFC 5652) over the DER ``tst_info``."""
        message_digest = _sequence(self._attr_message_digest_head + tlv(0x31, tlv(0x04, hashlib.sha256(tst_info).digest())))
        # DER orders a SET OF by the encodings of its elements; verifiers (OpenSSL) re-encode the
        # attributes before checking the signature, so any other order would not verify.
        attributes = b"".join(sorted((self._attr_content_type, message_digest, self._attr_signing_certificate)))
        signature = self.signer.sign(tlv(0x31, attributes))  # signed as a SET OF (RFC 5652 §5.4)
        signer_info = _sequence(
            self._signer_info_head
            + tlv(0xA0, attributes)  # signedAttrs [0] IMPLICIT
            + self._signature_algorithm
            + tlv(0x04, signature)
        )
        encapsulated = _sequence(_ID_CT_TST_INFO + tlv(0xA0, tlv(0x04, tst_info)))
        signed_data = _sequence(
            self._signed_data_head
            + encapsulated
            + (self._certificates if include_certificates else b"")
            + tlv(0x31, signer_info)
        )
        return _sequence(_ID_SIGNED_DATA + tlv(0xA0, signed_data))


_ID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
_ID_CT_TST_INFO = core.ObjectIdentifier("1.2.840.113549.1.9.16.1.4").dump()




def _sequence(content: bytes) -> bytes:
    return tlv(0x30, content)


def _integer(n: int) -> bytes:
    """DER INTEGER: minimal two's complement."""
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))
