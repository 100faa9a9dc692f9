"""Wiring of the trust bundle (``verify.bundle``): the platform's own CA certificates and QR token
keys, as the CLI (``eauth trust export``) and ``GET /api/v1/trust-bundle`` publish them."""

from __future__ import annotations

from api.licenses import qr_public_keys
from api.platform import Platform
from store.ca_store import SqlCaStore
from verify.bundle import BundleCertificate, TrustBundle


def trust_bundle(platform: Platform) -> TrustBundle:
    """This platform's bundle: root, issuing CAs, OCSP signers, TSA (in the order ``eauth init`` made
    them), and the QR token keys."""
    with platform.db.session() as session:
        authorities = SqlCaStore(session).authorities()
    return TrustBundle.build(
        platform_name=platform.settings.platform_name,
        base_url=platform.settings.public_base_url,
        certificates=[BundleCertificate(name=a.name, role=a.role, certificate=a.certificate) for a in authorities],
        qr_keys=qr_public_keys(platform),
    )


__all__ = ["trust_bundle"]
