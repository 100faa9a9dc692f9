"""The trust bundle: built from the platform, JSON round trip, strict validation with the member at
fault named, and what it gives verification (anchors, QR keys)."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from jwt.algorithms import ECAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from api.trust import trust_bundle
from eauth.errors import InvalidTrustBundle
from verify.bundle import FORMAT, TrustBundle


@pytest.fixture(scope="module")
def bundle(platform) -> TrustBundle:
    return trust_bundle(platform)


def test_contents(bundle, platform):
    roles = {c.name: c.role for c in bundle.certificates}
    assert roles["root"] == "root" and bundle.certificates[0].name == "root"
    assert {roles[n] for n in ("citizen", "enterprise", "seal")} == {"issuing"}
    assert roles["tsa"] == "tsa" and roles["ocsp-seal"] == "ocsp"
    root_der = bundle.certificates[0].certificate.public_bytes(Encoding.DER)
    assert bundle.platform_id == hashlib.sha256(root_der).hexdigest()
    assert bundle.platform_name == platform.settings.platform_name
    anchors = bundle.trust_anchors()
    assert [a.name for a in anchors.roots] == [platform.settings.platform_name]
    assert len(anchors.intermediates) == len(bundle.certificates) - 1
    from api.licenses import qr_public_keys

    assert bundle.qr_keys().keys() == qr_public_keys(platform).keys()


def test_json_round_trip(bundle):
    text = bundle.to_json()
    document = json.loads(text)
    assert document["format"] == FORMAT and document["version"] == 2
    assert document["signature"]["algorithm"] == "ecdsa-with-SHA256"
    again = TrustBundle.from_json(text)
    assert again == bundle
    assert TrustBundle.from_json(text.encode()).to_json() == text


def _mutated(bundle, change) -> dict:
    document = copy.deepcopy(bundle.to_dict())
    change(document)
    return document


def _other_root_pem(tmp_path_factory) -> str:
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger root")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM).decode()


@pytest.mark.parametrize("change, path", [
    (lambda d: d.update(format="something-else"), "format"),
    (lambda d: d.update(version=3), "version"),
    (lambda d: d.update(version=1), "login_keys"),  # a version 1 bundle has neither login keys nor signature
    (lambda d: d.pop("signature"), "signature"),
    (lambda d: d["signature"].update(value="not base64!"), "signature.value"),
    (lambda d: d["signature"].update(algorithm="sha256WithRSAEncryption"), "signature.algorithm"),
    (lambda d: d["platform"].update(base_url="https://elsewhere.example"), "signature.value"),  # tampered
    (lambda d: d["login_keys"]["keys"].pop(), "signature.value"),
    (lambda d: d["login_keys"]["keys"][0].update(kid="AAAA"), "login_keys"),
    (lambda d: d.update(version="1"), "version"),
    (lambda d: d.pop("qr_keys"), "qr_keys"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d["platform"].update(id="00" * 32), "platform.id"),
    (lambda d: d["platform"].update(name=""), "platform.name"),
    (lambda d: d["platform"].update(name=5), "platform.name"),
    (lambda d: d.update(created_at="yesterday"), "created_at"),
    (lambda d: d.update(created_at="2026-01-01T00:00:00"), "created_at"),
    (lambda d: d.update(certificates=[]), "certificates"),
    (lambda d: d["certificates"][0].update(role="boss"), "certificates[0].role"),
    (lambda d: d["certificates"][1].update(pem="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
     "certificates[1].pem"),
    (lambda d: d["certificates"][1].update(pem=d["certificates"][1]["pem"] * 2), "certificates[1].pem"),
    (lambda d: d["certificates"][2].update(name="root"), "certificates[2].name"),
    (lambda d: d["certificates"].reverse(), "certificates[0].role"),
    (lambda d: d["certificates"][1].update(role="root"), "certificates[1].pem"),  # not self-signed
    (lambda d: d["qr_keys"]["keys"][0].update(kid="AAAAAAAA"), "qr_keys"),
    (lambda d: d["qr_keys"]["keys"][0].update(crv="P-384"), "qr_keys.keys[0]"),
    (lambda d: d["qr_keys"]["keys"][0].update(x="AAAA"), "qr_keys.keys[0]"),
    (lambda d: d["qr_keys"]["keys"][0].update(d="AAAA"), "qr_keys.keys[0]"),  # a private key: refused
    (lambda d: d["qr_keys"].update(keys={}), "qr_keys.keys"),
])
def test_strict_validation(bundle, change, path):
    with pytest.raises(InvalidTrustBundle) as raised:
        TrustBundle.from_json(json.dumps(_mutated(bundle, change)))
    assert raised.value.extra["path"] == path, raised.value.detail
    assert raised.value.detail


def test_foreign_certificate_in_bundle(bundle, tmp_path_factory):
    stranger = _other_root_pem(tmp_path_factory)

    def add(d):
        d["certificates"].append({"name": "stranger", "role": "issuing", "pem": stranger})

    with pytest.raises(InvalidTrustBundle, match="not issued by a CA of this bundle"):
        TrustBundle.from_dict(_mutated(bundle, add))


@pytest.mark.parametrize("text", [b"", b"not json", b"[]", b"\xff\xfe", b"{}", b"x" * (2 << 20)])
def test_not_a_bundle(text):
    with pytest.raises(InvalidTrustBundle):
        TrustBundle.from_json(text)


def test_jwks_is_public_only(bundle):
    (jwk,) = bundle.jwks()["keys"]
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert isinstance(ECAlgorithm.from_jwk(jwk), ec.EllipticCurvePublicKey)


def test_login_keys(bundle, platform):
    from api.login import login_service

    assert bundle.login_keys().keys() == login_service(platform).keys().keys()
    assert bundle.login_keys()


def test_version_1_still_read(bundle):
    """An unsigned version 1 bundle (exported before version 2) still verifies offline."""
    document = bundle.to_dict()
    del document["login_keys"], document["signature"]
    document["version"] = 1
    old = TrustBundle.from_dict(document)
    assert old.version == 1 and old.signature is None and old.login_keys() == {}
    assert old.qr_keys() == bundle.qr_keys() and old.trust_anchors() == bundle.trust_anchors()
    assert json.loads(old.to_json()) == document


def test_signature_by_another_key(bundle, platform):
    from dataclasses import replace

    unsigned = replace(bundle, signature=None)
    with pytest.raises(ValueError, match="not the root certificate's key"):
        unsigned.signed(platform.keys.signer("qr-token"))
    with pytest.raises(ValueError, match="signed"):
        unsigned.to_dict()
