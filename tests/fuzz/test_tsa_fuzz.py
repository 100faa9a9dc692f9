"""Fuzz the time-stamping authority's query parser (``signing.tsa.TimeStampAuthority.respond`` from
DER): every input gets a readable TimeStampResp, granted or rejected for the input's fault, never
``systemFailure`` (what it answers when something unexpected was raised inside)."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto import tsp
from hypothesis import given

from signing.tsa import TimeStampResp
from tests.fuzz.harness import domain_outcome, fuzzing, inputs


def _query(digest: bytes, algorithm: str, **fields) -> bytes:
    return tsp.TimeStampReq({"version": 1, "message_imprint": {"hash_algorithm": {"algorithm": algorithm},
                                                                "hashed_message": digest}, **fields}).dump()


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    """Valid queries: SHA-256 with nonce and certReq, SHA-512 bare, SHA-384 with the policy."""
    return [_query(hashlib.sha256(b"document").digest(), "sha256", nonce=0x1234_5678_9ABC_DEF0, cert_req=True),
            _query(hashlib.sha512(b"document").digest(), "sha512"),
            _query(hashlib.sha384(b"x").digest(), "sha384", nonce=1, req_policy="1.3.6.1.4.1.99999.1.1")]


def _status(der: bytes) -> tuple[str, set]:
    response = TimeStampResp.load(der, strict=True)
    status = response["status"]
    return status["status"].native, set(status["fail_info"].native or ())


def test_seeds_granted(platform, seeds):
    for seed in seeds[:2]:
        assert _status(platform.timestamp_authority().respond(seed))[0] == "granted"


def test_tsa_query_parser(platform, seeds, watchdog):
    tsa = platform.timestamp_authority()

    @fuzzing(examples=600)
    @given(data=inputs(seeds))
    def run(data: bytes) -> None:
        status, fail_info = _status(domain_outcome(watchdog, tsa.respond, data))
        assert status in ("granted", "rejection"), status
        assert "system_failure" not in fail_info

    run()
