"""Wiring of the license service: the platform's registry, blob store, agency seals (from
``api/documents.py``), QR key and secrets. Shared by the HTTP routes (through the jobs below, run in a
worker process of ``api/pool.py``), the bulk import and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from jwt.algorithms import ECAlgorithm

from api.documents import sealer
from api.platform import QR_KEY_LABEL, Platform
from licenses.issuance import Actor, IssuedLicense, Issuer, LicenseService
from licenses.token import QrTokenSigner, qr_key_id
from store.agencies import AgencyRecord
from store.blobs import FileBlobStore
from store.license_store import SqlLicenseStore, license_transactions

def blob_store(platform: Platform) -> FileBlobStore:
    """Issued PDFs and seal images, by SHA-256, under ``<data dir>/documents``."""
    return FileBlobStore(Path(platform.settings.data_dir) / "documents")


def license_service(platform: Platform) -> LicenseService:
    """The platform's license service, made on first use and kept on it (it holds no state)."""
    return platform.kept(_make_service)


def _make_service(platform: Platform) -> LicenseService:
    blobs = blob_store(platform)
    documents = sealer(platform)
    qr_key = platform.keys.signer(QR_KEY_LABEL)

    return LicenseService(
        transaction=license_transactions(platform.db), blobs=blobs, seal_for=documents.agency_seal,
        seal_image_for=lambda agency_id: stored_seal_image(platform, agency_id), qr=QrTokenSigner(qr_key, qr_key_id(qr_key.public_key)), keys=platform.keys,
        public_base_url=platform.settings.public_base_url,
    )


#: How long a process keeps using an agency's seal image before it looks again, in seconds.
SEAL_IMAGE_REUSE = 30.0
_seal_images: dict[tuple[int, int], tuple[float, bytes | None]] = {}


def stored_seal_image(platform: Platform, agency_id: int) -> bytes | None:
    """The agency's seal image (PNG), if it set one; a new image shows on licenses within
    ``SEAL_IMAGE_REUSE`` seconds (a database read and a file read per license saved)."""
    now = time.monotonic()
    kept = _seal_images.get((id(platform), agency_id))
    if kept is not None and now < kept[0]:
        return kept[1]
    with platform.db.transaction() as connection:
        key = SqlLicenseStore(connection).seal_image_key(agency_id)
    image = blob_store(platform).get(key) if key is not None else None
    _seal_images[id(platform), agency_id] = (now + SEAL_IMAGE_REUSE, image)
    return image


def set_seal_image(platform: Platform, agency_id: int, image: bytes, *, actor: str) -> str:
    """Store ``image`` as the agency's seal image (this process uses it at once, others within
    ``SEAL_IMAGE_REUSE``); returns its key (SHA-256)."""
    key = blob_store(platform).put(image)
    with platform.db.transaction() as connection:
        SqlLicenseStore(connection).set_seal_image_key(agency_id, key, actor=actor)
    _seal_images.pop((id(platform), agency_id), None)
    return key


def qr_public_keys(platform: Platform) -> Mapping[str, EllipticCurvePublicKey]:
    """The platform's own QR token keys, by kid (what its trust bundle publishes; the keys of imported
    platforms are ``api.mutual.imported(platform).qr_keys``). Kept per platform: the key is fixed once
    ``eauth init`` made it, and its thumbprint was a tenth of a QR verification's CPU time."""
    return platform.kept(_own_qr_keys)


def _own_qr_keys(platform: Platform) -> Mapping[str, EllipticCurvePublicKey]:
    public_key = platform.keys.signer(QR_KEY_LABEL).public_key
    return MappingProxyType({qr_key_id(public_key): public_key})


def qr_jwks(platform: Platform) -> dict:
    """The QR token key as a JWKS (public part), under the kid the tokens carry."""
    public_key = platform.keys.signer(QR_KEY_LABEL).public_key
    jwk = json.loads(ECAlgorithm.to_jwk(public_key))
    return {"keys": [jwk | {"kid": qr_key_id(public_key), "use": "sig", "alg": "ES256"}]}


def issuer_of(agency: AgencyRecord) -> Issuer:
    return Issuer(agency_id=agency.id, name=agency.name, credit_code=agency.credit_code)


def issue_job(agency: AgencyRecord, type_code: str, fields: dict, actor: Actor, request_key: str | None) -> IssuedLicense:
    """Process-pool job: issue one license in this worker's platform (plain, picklable values)."""
    from api.pool import worker_platform

    return license_service(worker_platform()).issue(issuer_of(agency), type_code=type_code, fields=fields,
                                                     actor=actor, request_key=request_key)


def amend_job(agency: AgencyRecord, license_id: str, fields: dict, actor: Actor) -> IssuedLicense:
    """Process-pool job: amend one license (a new signed version) in this worker's platform."""
    from api.pool import worker_platform

    return license_service(worker_platform()).amend(license_id, issuer_of(agency), fields=fields, actor=actor)
