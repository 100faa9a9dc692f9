"""Wiring of the trust bundle (``verify.bundle``): the platform's own CA certificates, QR token keys
and login token keys, signed with the root key, as the CLI (``eauth trust export``) and
``GET /api/v1/trust-bundle`` publish them."""

from __future__ import annotations

from api.licenses import qr_public_keys
from api.login import login_service
from api.platform import Platform
from store.ca_store import SqlCaStore
from verify.bundle import BundleCertificate, TrustBundle


def trust_bundle(platform: Platform) -> TrustBundle:
    """This platform's signed bundle: root, issuing CAs, OCSP signers, TSA (in the order ``eauth init``
    made them), the QR token keys and the published login keys."""
    with platform.db.session() as session:
        authorities = SqlCaStore(session).authorities()
    root = next(a for a in authorities if a.role == "root")
    bundle = TrustBundle.build(
        platform_name=platform.settings.platform_name,
        base_url=platform.settings.public_base_url,
        certificates=[BundleCertificate(name=a.name, role=a.role, certificate=a.certificate) for a in authorities],
        qr_keys=qr_public_keys(platform),
        login_keys={kid: key.public_key for kid, key in login_service(platform).keys().items()},
    )
    return bundle.signed(platform.keys.signer(root.key_label))


__all__ = ["trust_bundle"]
