"""Fuzz the PKCS#10 parser of enrollment (``ca.csr.parse_csr``, PEM or DER): a request or a domain
error (InvalidCsr, WeakKey, UnsupportedAlgorithm, CsrSignatureInvalid), never another exception."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given

from ca.csr import parse_csr
from tests.fuzz.harness import domain_outcome, fuzzing, inputs


def _csr(key, *, extensions: bool) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "张三"), x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]))
    if extensions:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name("a@example.cn")]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    """Valid requests: P-256 with and without extensions, RSA-2048, each as DER and as PEM."""
    ders = [_csr(ec.generate_private_key(ec.SECP256R1()), extensions=False),
            _csr(ec.generate_private_key(ec.SECP384R1()), extensions=True),
            _csr(rsa.generate_private_key(public_exponent=65537, key_size=2048), extensions=False)]
    pems = [b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE REQUEST-----\n"
            for der in ders]
    return ders + pems


def test_seeds_parse(seeds):
    for seed in seeds:
        assert isinstance(parse_csr(seed), x509.CertificateSigningRequest)


def test_csr_parser(seeds, watchdog):
    @fuzzing(examples=1000)
    @given(data=inputs(seeds))
    def run(data: bytes) -> None:
        outcome = domain_outcome(watchdog, parse_csr, data)
        if isinstance(outcome, x509.CertificateSigningRequest):
            assert outcome.is_signature_valid
            outcome.public_key()

    run()
