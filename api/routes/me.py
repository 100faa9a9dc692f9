"""The logged-in holder's own view (login token, audience "eauth"): who they are, their certificates,
their licenses (wallet) and PDFs, and presentations (亮证) of a license disclosing chosen fields.
A holder only ever sees their own: anything else is 404, as if it did not exist."""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from typing import Annotated

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field

from api.deps import platform
from api.holder import HolderPrincipal, current_holder
from api.licenses import blob_store, license_service
from api.platform import QR_KEY_LABEL, Platform
from api.routes.certificates import CertificateView, _view
from api.routes.licenses import PDF, LicenseView, VersionView, _license_view, _version_view
from ca.profiles import SubjectKind
from eauth.errors import InvalidInput, NotFound
from licenses.presentation import MAX_TTL_MINUTES, PresentationClaims, choose_fields, sign_presentation
from licenses.records import LicenseRecord, VersionRecord
from licenses.token import qr_key_id
from store.audit import record as audit
from store.ca_store import SqlCaStore
from store.license_store import SqlLicenseStore

router = APIRouter(prefix="/api/v1/me", tags=["holder"])
PRESENTATION_PATH = "/p/"
Holder = Annotated[HolderPrincipal, Depends(current_holder)]
Identifier = Annotated[str, Path(min_length=1, max_length=160, description="The license identifier (any version).")]


class MeView(BaseModel):
    subject_id: str = Field(description="Pseudonymous, stable per identity (the login token's sub).")
    id_kind: str
    id_number_masked: str
    name: str
    certificate_serial: str
    expires_at: datetime


class HolderLicense(LicenseView):
    pdf_url: str = Field(description="/api/v1/me/licenses/{identifier}/pdf")


class HolderLicenseDetail(HolderLicense):
    fields: dict[str, str]
    current: VersionView


class PresentationRequest(BaseModel):
    license: str = Field(min_length=1, max_length=160, description="The license identifier.")
    fields: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=40, description="The names of the fields to disclose (and only those).")
    ttl_minutes: int = Field(5, ge=1, le=MAX_TTL_MINUTES, description=f"Lifetime, 1 to {MAX_TTL_MINUTES} minutes.")


class PresentationView(BaseModel):
    token: str
    url: str = Field(description="{public base}/p/{token}: the page a relying party opens or scans.")
    expires_at: datetime
    qr_svg: str = Field(description="The URL as a QR code (SVG).")
    license: str
    fields: list[str]


def mask(number: str) -> str:
    """An identity number as its holder is shown it back: the first 4 and last 4 characters."""
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def _holder_view(license: LicenseRecord) -> dict:
    return _license_view(license) | {"pdf_url": f"/api/v1/me/licenses/{license.identifier}/pdf"}


def _own(p: Platform, holder: HolderPrincipal, identifier: str) -> tuple[LicenseRecord, VersionRecord]:
    """The license ``identifier`` names and that version, if it is the holder's; NotFound otherwise."""
    index = license_service(p).holder_index(holder.subject_kind, holder.id_number)
    with p.db.transaction() as connection:
        found = SqlLicenseStore(connection).license_by_identifier(identifier)
    if found is None or found[0].holder_kind != holder.subject_kind or found[0].holder_index != index:
        raise NotFound(f"you hold no license {identifier}")
    return found


@router.get("", response_model=MeView, summary="The logged-in holder")
async def me(holder: Holder) -> MeView:
    return MeView(subject_id=holder.subject_id, id_kind=holder.id_kind, id_number_masked=mask(holder.id_number),
                  name=holder.name, certificate_serial=holder.certificate_serial,
                  expires_at=datetime.fromtimestamp(holder.expires_at, timezone.utc))


@router.get("/certificates", response_model=list[CertificateView], summary="The holder's certificates")
async def my_certificates(holder: Holder, p: Annotated[Platform, Depends(platform)]) -> list[CertificateView]:
    """Every certificate of the holder's identity, newest first, whatever its status."""
    kind = SubjectKind(holder.subject_kind)
    with p.db.transaction() as connection:
        store = SqlCaStore(connection)
        subject = store.subject_by_index(kind.value, p.ca.identities.index(kind, holder.id_number))
        records = store.certificates_of_subject(subject.id) if subject is not None else []
    return [CertificateView(**_view(record)) for record in records]


@router.get("/licenses", response_model=list[HolderLicense], summary="The holder's licenses (wallet)")
async def my_licenses(holder: Holder, p: Annotated[Platform, Depends(platform)]) -> list[HolderLicense]:
    """Every license held, from every agency, by the blind index of the holder's identity number."""
    index = license_service(p).holder_index(holder.subject_kind, holder.id_number)
    with p.db.transaction() as connection:
        found = SqlLicenseStore(connection).licenses_of_holder(holder.subject_kind, index)
    return [HolderLicense(**_holder_view(license)) for license in found]


@router.get("/licenses/{identifier}", response_model=HolderLicenseDetail, summary="One of the holder's licenses")
async def my_license(identifier: Identifier, holder: Holder, p: Annotated[Platform, Depends(platform)]
                     ) -> HolderLicenseDetail:
    """The license with its current fields; 404 for a license the holder does not hold."""
    license, _ = _own(p, holder, identifier)
    with p.db.transaction() as connection:
        current = SqlLicenseStore(connection).version(license.id, license.version)
    return HolderLicenseDetail(**_holder_view(license), fields=license_service(p).cipher.decrypt(current),
                               current=_version_view(p, current, license.version))


@router.get("/licenses/{identifier}/pdf", response_class=Response, summary="Download one of the holder's PDFs",
            responses={200: {"content": {PDF: {}}, "description": "The signed PDF exactly as issued."}})
async def my_license_pdf(identifier: Identifier, holder: Holder, p: Annotated[Platform, Depends(platform)]
                         ) -> Response:
    """The signed PDF of the version ``identifier`` names."""
    _, version = _own(p, holder, identifier)
    name = version.identifier.replace(".", "_")
    return Response(blob_store(p).get(version.pdf_sha256), media_type=PDF,
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"',
                             "ETag": f'"{version.pdf_sha256}"'})


@router.post("/presentations", status_code=201, response_model=PresentationView, summary="Present a license (亮证)")
def present(body: PresentationRequest, holder: Holder, p: Annotated[Platform, Depends(platform)]) -> PresentationView:
    """A short-lived token (and its URL and QR code) disclosing only the chosen fields of one of the
    holder's licenses, with its identifier, type and issuer. Signed with the license QR key."""
    license, version = _own(p, holder, body.license)
    if version.version != license.version:
        raise InvalidInput(f"{body.license} is superseded: present the current version {license.identifier}",
                           field="license")
    fields = choose_fields({k: str(v) for k, v in license_service(p).cipher.decrypt(version).items()}, body.fields)
    now = int(time.time())
    claims = PresentationClaims(issuer=p.settings.public_base_url, identifier=license.identifier,
                                type_code=license.type_code, issuer_code=license.issuer_code, fields=fields,
                                issued_at=now, expires_at=now + 60 * body.ttl_minutes)
    signer = p.keys.signer(QR_KEY_LABEL)
    token = sign_presentation(claims, signer, kid=qr_key_id(signer.public_key))
    url = f"{p.settings.public_base_url.rstrip('/')}{PRESENTATION_PATH}{token}"
    with p.db.transaction() as connection:
        audit(connection, actor=f"holder:{holder.subject_id}", action="presentation.create",
              subject=f"license:{license.identifier}",
              details={"fields": list(fields), "expires_at": claims.expires_at, "jti": claims.token_id})
    return PresentationView(token=token, url=url, expires_at=datetime.fromtimestamp(claims.expires_at, timezone.utc),
                            qr_svg=qr_svg(url), license=license.identifier, fields=list(fields))


def qr_svg(text: str) -> str:
    """``text`` as a QR code (error correction M), an SVG document."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4,
                         image_factory=qrcode.image.svg.SvgPathImage)
    code.add_data(text)
    out = io.BytesIO()
    code.make_image().save(out)
    return out.getvalue().decode()

