"""Electronic licenses: an agency defines its license types, issues, amends, suspends, reinstates,
revokes and cancels its licenses, sets its seal image; holders' licenses are listed (wallet) and
downloaded. Rendering and signing run in the app's process pool (``api/pool.py``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from api.deps import platform, scoped
from api.licenses import amend_job, blob_store, issue_job, license_service, set_seal_image
from api.platform import Platform
from api.pool import WorkerPool
from api.tokens import AccessToken
from ca.identifiers import validate_citizen_id, validate_credit_code
from eauth.errors import InvalidInput, NotFound
from licenses.catalog import LicenseType
from licenses.issuance import Actor, IssuedLicense, effective_status
from licenses.records import LicenseRecord, VersionRecord
from signing.pades import seal_image
from store.agencies import AgencyRecord, agency_by_id
from store.license_store import SqlLicenseStore

router = APIRouter(prefix="/api/v1", tags=["licenses"])
PDF = "application/pdf"
#: Largest seal image upload (PNG).
MAX_SEAL_IMAGE_BYTES = 512 * 1024

LicenseId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="The license's id (from issuance).")]


class IssueRequest(BaseModel):
    """A license of one of the agency's types, for the holder its fields name."""

    type_code: str = Field(max_length=32, description="License type code (catalog).",
                           examples=["11100000000013338W901"])
    fields: dict[str, Any] = Field(description="Field values by name, as the type's schema defines them.")
    request_key: str | None = Field(
        None, min_length=1, max_length=128,
        description="Idempotency key: the same key again returns the same license instead of a second one.")


class AmendRequest(BaseModel):
    fields: dict[str, Any] = Field(description="The complete new field values (same holder number).")


class StatusRequest(BaseModel):
    reason: str | None = Field(None, max_length=200, description="Why (required to revoke).")


class WalletRequest(BaseModel):
    holder_kind: Literal["person", "enterprise"]
    id_number: str = Field(min_length=1, max_length=32,
                           description="The holder's citizen ID (person) or unified social credit code (enterprise).")


class VersionView(BaseModel):
    version: int
    identifier: str
    issued_on: date
    valid_until: date | None
    status: str = Field(description="current or superseded")
    pdf_sha256: str
    pdf_size: int
    seal_serial: str
    qr_url: str


class LicenseView(BaseModel):
    id: str
    identifier: str = Field(description="Identifier of the current version (GB/T 36904 style).")
    type_code: str
    issuer_code: str
    holder_kind: str
    holder_name: str
    status: str = Field(description="valid, suspended, revoked, cancelled or expired (by date).")
    status_reason: str | None
    version: int
    valid_until: date | None
    created_at: datetime
    updated_at: datetime
    pdf_url: str


class IssuedView(LicenseView):
    created: bool = Field(description="False when the request key named a license issued earlier.")
    current: VersionView


class EventView(BaseModel):
    version: int
    action: str
    actor: str
    reason: str | None
    at: datetime


class LicenseDetail(LicenseView):
    fields: dict[str, str]
    versions: list[VersionView]
    events: list[EventView]


def _actor(token: AccessToken) -> Actor:
    return Actor(agency_id=token.agency_id, name=f"client:{token.client_id}")


def _agency(p: Platform, token: AccessToken) -> AgencyRecord:
    with p.db.session() as session:
        return agency_by_id(session, token.agency_id)


def _license_view(license: LicenseRecord) -> dict:
    return {
        "id": license.id, "identifier": license.identifier, "type_code": license.type_code,
        "issuer_code": license.issuer_code, "holder_kind": license.holder_kind, "holder_name": license.holder_name,
        "status": effective_status(license, date.today()), "status_reason": license.status_reason,
        "version": license.version, "valid_until": license.valid_until, "created_at": license.created_at,
        "updated_at": license.updated_at, "pdf_url": f"/api/v1/licenses/{license.id}/pdf",
    }


def _version_view(p: Platform, version: VersionRecord, current: int) -> VersionView:
    base = p.settings.public_base_url.rstrip("/")
    return VersionView(
        version=version.version, identifier=version.identifier, issued_on=version.issued_on,
        valid_until=version.valid_until, status="current" if version.version == current else "superseded",
        pdf_sha256=version.pdf_sha256, pdf_size=version.pdf_size, seal_serial=version.seal_serial,
        qr_url=f"{base}/v/{version.qr_token}",
    )


def _issued_view(p: Platform, issued: IssuedLicense) -> IssuedView:
    return IssuedView(**_license_view(issued.license), created=issued.created,
                      current=_version_view(p, issued.version, issued.license.version))


# -- catalog ---------------------------------------------------------------------------------------


@router.post("/license-types", status_code=201, summary="Define a license type", tags=["license types"])
async def define_type(
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:issue"))],
    body: Annotated[dict[str, Any], Body(description="The type as `licenses.catalog.LicenseType.to_json` "
                                                    "(see GET /api/v1/license-types for examples).")],
) -> dict:
    """Add a license type owned by the calling agency: its code, names, field schema, validity rule and
    layout. The type's ``agency_code`` must be the caller's."""
    agency = _agency(p, token)
    license_type = LicenseType.from_json(body)
    if license_type.agency_code != agency.code:
        raise InvalidInput(f"agency_code must be the calling agency's code {agency.code!r}", field="agency_code")
    license_service(p).define_type(license_type, agency_id=agency.id)
    return license_type.to_json()


@router.get("/license-types", summary="List license types", tags=["license types"])
async def list_types(
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:read"))],
    mine: Annotated[bool, Query(description="Only the calling agency's types.")] = False,
) -> list[dict]:
    with p.db.transaction() as connection:
        records = SqlLicenseStore(connection).license_types(token.agency_id if mine else None)
    return [record.spec for record in records]


@router.get("/license-types/{code}", summary="One license type", tags=["license types"])
async def get_type(
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:read"))],
    code: Annotated[str, Path(max_length=32)],
) -> dict:
    with p.db.transaction() as connection:
        record = SqlLicenseStore(connection).license_type(code)
    if record is None:
        raise NotFound(f"no license type {code!r} in the catalog")
    return record.spec


# -- issuance and lifecycle ------------------------------------------------------------------------


@router.post("/licenses", status_code=201, response_model=IssuedView, summary="Issue a license")
async def issue(
    request: Request,
    response: Response,
    body: IssueRequest,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:issue"))],
) -> IssuedView:
    """Validate the fields against the type's schema, render the PDF (Chinese text, seal, QR), sign it
    (certification, DocMDP no changes, PAdES B-LT, the agency's seal) and store it. With a
    ``request_key``, repeating the request returns the same license (200)."""
    pool: WorkerPool = request.app.state.signing_pool
    issued = await pool.run(issue_job, _agency(p, token), body.type_code, body.fields, _actor(token),
                            body.request_key)
    if not issued.created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/licenses/{issued.license.id}"
    return _issued_view(p, issued)


@router.get("/licenses/{license_id}", response_model=LicenseDetail, summary="A license with its history")
async def get_license(
    license_id: LicenseId,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:read"))],
) -> LicenseDetail:
    service = license_service(p)
    with p.db.transaction() as connection:
        store = SqlLicenseStore(connection)
        license = store.license(license_id)
        if license is None or license.agency_id != token.agency_id:
            raise NotFound(f"no license {license_id} of this agency")
        versions = [store.version(license_id, n) for n in range(1, license.version + 1)]
        events = store.events(license_id)
    return LicenseDetail(
        **_license_view(license), fields=service.cipher.decrypt(versions[-1]),
        versions=[_version_view(p, v, license.version) for v in versions],
        events=[EventView(version=e.version, action=e.action, actor=e.actor, reason=e.reason, at=e.at) for e in events],
    )


@router.get("/licenses/{license_id}/pdf", response_class=Response, summary="Download a license PDF",
            responses={200: {"content": {PDF: {}}, "description": "The signed PDF exactly as issued."}})
async def get_pdf(
    license_id: LicenseId,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:read"))],
    version: Annotated[int | None, Query(ge=1, description="A version; default the current one.")] = None,
) -> Response:
    """The agency's own licenses; with ``licenses:wallet`` any holder's (the wallet)."""
    with p.db.transaction() as connection:
        store = SqlLicenseStore(connection)
        license = store.license(license_id)
        wallet = "licenses:wallet" in token.scopes
        if license is None or (license.agency_id != token.agency_id and not wallet):
            raise NotFound(f"no license {license_id} of this agency")
        record = store.version(license_id, version or license.version)
    if record is None:
        raise NotFound(f"license {license_id} has no version {version}")
    pdf = blob_store(p).get(record.pdf_sha256)
    name = record.identifier.replace(".", "_")
    return Response(pdf, media_type=PDF, headers={"Content-Disposition": f'attachment; filename="{name}.pdf"',
                                                  "ETag": f'"{record.pdf_sha256}"'})


@router.post("/licenses/{license_id}/amend", response_model=IssuedView, summary="Amend a license (new version)")
async def amend(
    request: Request,
    license_id: LicenseId,
    body: AmendRequest,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:issue"))],
) -> IssuedView:
    """A new version with the new fields, signed anew; the previous version is superseded (its QR and
    PDF then verify as superseded by this version)."""
    pool: WorkerPool = request.app.state.signing_pool
    issued = await pool.run(amend_job, _agency(p, token), license_id, body.fields, _actor(token))
    return _issued_view(p, issued)


def _status_route(action: str, summary: str):
    async def change(
        license_id: LicenseId,
        p: Annotated[Platform, Depends(platform)],
        token: Annotated[AccessToken, Depends(scoped("licenses:revoke"))],
        body: StatusRequest | None = None,
    ) -> LicenseView:
        changed = license_service(p).change_status(license_id, action, actor=_actor(token),
                                                   reason=body.reason if body else None)
        return LicenseView(**_license_view(changed))

    change.__doc__ = summary
    router.add_api_route(f"/licenses/{{license_id}}/{action}", change, methods=["POST"], summary=summary,
                         response_model=LicenseView, name=f"{action}_license")


for _action, _summary in (("suspend", "Suspend a valid license"), ("reinstate", "Reinstate a suspended license"),
                          ("revoke", "Revoke a license (reason required)"),
                          ("cancel", "Cancel a license (注销, e.g. at the holder's request)")):
    _status_route(_action, _summary)


# -- wallet ----------------------------------------------------------------------------------------


@router.post("/wallet", response_model=list[LicenseView], summary="A holder's licenses")
async def wallet(
    body: WalletRequest,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:wallet"))],
) -> list[LicenseView]:
    """Every license of the holder with this identity number, from every agency (POST: the number stays
    out of URLs and logs). Until holders log in themselves, an agency client with ``licenses:wallet``
    asks on their behalf."""
    number = validate_citizen_id(body.id_number) if body.holder_kind == "person" else validate_credit_code(body.id_number)
    index = license_service(p).holder_index(body.holder_kind, number)
    with p.db.transaction() as connection:
        found = SqlLicenseStore(connection).licenses_of_holder(body.holder_kind, index)
    return [LicenseView(**_license_view(license)) for license in found]


# -- the agency's seal image -----------------------------------------------------------------------


@router.put("/agency/seal-image", status_code=204, summary="Set the agency's seal image", tags=["agencies"])
async def put_seal_image(
    image: UploadFile,
    p: Annotated[Platform, Depends(platform)],
    token: Annotated[AccessToken, Depends(scoped("licenses:issue"))],
) -> Response:
    """A PNG shown on the agency's licenses and, by default, in its visible seals."""
    data = await image.read(MAX_SEAL_IMAGE_BYTES + 1)
    if len(data) > MAX_SEAL_IMAGE_BYTES:
        raise InvalidInput(f"the seal image is larger than {MAX_SEAL_IMAGE_BYTES // 1024} KiB", field="image")
    seal_image(data)  # InvalidSealImage unless a usable PNG
    key = set_seal_image(p, token.agency_id, data, actor=f"client:{token.client_id}")
    return Response(status_code=204, headers={"ETag": f'"{key}"'})
