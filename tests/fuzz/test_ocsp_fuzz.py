"""Fuzz the OCSP responder's request handling (``ca.ocsp.parse_request`` and ``OcspResponder.respond``
over the platform's store): the parser returns a request or raises MalformedRequest; the responder
answers every input with a readable OCSPResponse that is successful, malformedRequest or unauthorized,
never internalError (what it answers when something unexpected was raised inside)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import given

from ca.ocsp import MalformedRequest, OcspRequest, OcspResponder, ResponseStatus, parse_request
from store.ca_store import SqlCaStore
from store.ocsp_store import SqlOcspStore
from tests.api.holders import enroll
from tests.fuzz.harness import domain_outcome, fuzzing, inputs

ANSWERED = {ResponseStatus.SUCCESSFUL, ResponseStatus.MALFORMED_REQUEST, ResponseStatus.UNAUTHORIZED}


@pytest.fixture(scope="module")
def responder(platform) -> tuple[OcspResponder, SqlOcspStore, dict]:
    """The responder as the /ocsp route makes it, and the issuers by name."""
    with platform.db.session() as session:
        authorities = SqlCaStore(session).authorities()
    made = OcspResponder(authorities, platform.keys, validity=timedelta(minutes=60), reuse_margin=timedelta(minutes=10))
    return made, SqlOcspStore(platform.db), {a.name: a.certificate for a in authorities}


@pytest.fixture(scope="module")
def seeds(platform, responder) -> list[bytes]:
    """Requests for a holder certificate: SHA-1 and SHA-256 CertIDs, with and without nonce, and two
    certificates in one request."""
    issuer = responder[2]["citizen"]
    first, second = (enroll(platform).certificate for _ in range(2))

    def request(certificate: x509.Certificate, algorithm=hashes.SHA1(), nonce: bool = True) -> bytes:
        builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm)
        if nonce:
            builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        return builder.build().public_bytes(Encoding.DER)

    two = asn1_ocsp.OCSPRequest.load(request(first))
    two["tbs_request"]["request_list"].append(asn1_ocsp.OCSPRequest.load(request(second))["tbs_request"]["request_list"][0])
    return [request(first), request(first, nonce=False), request(second, algorithm=hashes.SHA256()), two.dump(force=True)]


def test_seeds_answered(responder, seeds):
    made, store, _ = responder
    for seed in seeds:
        assert made.respond(seed, store).status is ResponseStatus.SUCCESSFUL


def test_request_parser(seeds, watchdog):
    def parse(data: bytes):
        try:
            return parse_request(data)
        except MalformedRequest as refused:
            return refused

    @fuzzing(examples=1500)
    @given(data=inputs(seeds))
    def run(data: bytes) -> None:
        assert isinstance(watchdog.call(parse, data), OcspRequest | MalformedRequest)

    run()


def test_responder(responder, seeds, watchdog):
    made, store, _ = responder

    @fuzzing(examples=400)
    @given(data=inputs(seeds))
    def run(data: bytes) -> None:
        answer = domain_outcome(watchdog, made.respond, data, store)
        assert answer.status in ANSWERED, answer.status
        assert ocsp.load_der_ocsp_response(answer.der).response_status.value == answer.status

    run()
