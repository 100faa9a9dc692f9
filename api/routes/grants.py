"""Authorized use (授权用证) over HTTP (``licenses.grants``): the logged-in holder grants an agency access
to one of their licenses for a purpose until a time, lists and withdraws grants and reads each grant's
access log (``/api/v1/me/grants``); the agency, with a client token of scope ``licenses:granted``, lists
the grants live for it and fetches the license data and PDF stating the purpose (``/api/v1/granted``)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from api.deps import platform, scoped
from api.holder import HolderPrincipal, current_holder
from api.licenses import blob_store, license_service
from api.platform import Platform
from api.routes.licenses import PDF, VersionView, _version_view
from api.tokens import AccessToken
from licenses.grants import MAX_PURPOSE, AccessRecord, Accessor, Grantor, GrantRecord, GrantService
from licenses.issuance import effective_status
from store.grant_store import SqlGrantStore, grant_transactions
from store.license_store import SqlLicenseStore

router = APIRouter(prefix="/api/v1", tags=["grants"])
SCOPE = "licenses:granted"
Holder = Annotated[HolderPrincipal, Depends(current_holder)]
Agency = Annotated[AccessToken, Depends(scoped(SCOPE))]
GrantId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="The grant's id.")]
Purpose = Annotated[str, Query(min_length=1, max_length=MAX_PURPOSE,
                               description="Why the agency fetches: must be the purpose the holder granted.")]


class GrantRequest(BaseModel):
    license: str = Field(min_length=1, max_length=160, description="Identifier of one of your licenses.")
    agency: str = Field(min_length=1, max_length=64, description="Code of the agency granted access.")
    purpose: str = Field(min_length=1, max_length=MAX_PURPOSE, description="What the agency may use it for.")
    valid_until: datetime = Field(description="When the grant ends (with a time zone; at most 366 days ahead).")


class GrantView(BaseModel):
    id: str
    license: str = Field(description="The license's current identifier.")
    agency: str = Field(description="The agency's code.")
    purpose: str
    valid_until: datetime
    created_at: datetime
    withdrawn_at: datetime | None
    state: Literal["live", "withdrawn", "expired"]
    accesses: int = Field(description="How many times the agency fetched under this grant.")


class AccessView(BaseModel):
    client_id: str
    purpose: str
    what: Literal["license", "pdf"]
    at: datetime


class GrantedView(BaseModel):
    """A grant live for the calling agency, with what it covers."""

    grant_id: str
    license: str
    type_code: str
    holder_name: str
    purpose: str
    valid_until: datetime
    license_url: str
    pdf_url: str


class GrantedLicense(BaseModel):
    """The granted license's current data: a revoked or suspended license still shows, with its status."""

    grant_id: str
    purpose: str
    identifier: str
    type_code: str
    issuer_code: str
    holder_kind: str
    holder_name: str
    status: str = Field(description="valid, suspended, revoked, cancelled or expired (by date).")
    status_reason: str | None
    version: int
    valid_until: date | None
    fields: dict[str, str]
    versions: list[VersionView]


def _service(p: Platform) -> GrantService:
    return GrantService(transaction=grant_transactions(p.db))


def _grantor(p: Platform, holder: HolderPrincipal) -> Grantor:
    index = license_service(p).holder_index(holder.subject_kind, holder.id_number)
    return Grantor(holder_kind=holder.subject_kind, holder_index=index, actor=f"holder:{holder.subject_id}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _grant_view(grant: GrantRecord, *, license: str, agency: str, accesses: int) -> GrantView:
    return GrantView(id=grant.id, license=license, agency=agency, purpose=grant.purpose,
                     valid_until=grant.valid_until, created_at=grant.created_at, withdrawn_at=grant.withdrawn_at,
                     state=grant.state(_now()), accesses=accesses)


def _one(p: Platform, grantor: Grantor, grant_id: str) -> GrantView:
    listed = {g.id: (g, ident, code, n) for g, ident, code, n in _holder_grants(p, grantor)}
    grant, identifier, code, accesses = listed[grant_id]
    return _grant_view(grant, license=identifier, agency=code, accesses=accesses)


def _holder_grants(p: Platform, grantor: Grantor):
    with p.db.transaction() as connection:
        return SqlGrantStore(connection).grants_of_holder(grantor.holder_kind, grantor.holder_index)


# -- the holder --------------------------------------------------------------------------------------


@router.post("/me/grants", status_code=201, response_model=GrantView, summary="Grant an agency a license (授权用证)",
             tags=["holder"])
def create_grant(body: GrantRequest, holder: Holder, p: Annotated[Platform, Depends(platform)],
                 response: Response) -> GrantView:
    """Let agency ``agency`` fetch your license ``license`` for ``purpose`` until ``valid_until``. 404
    for a license you do not hold or an unknown agency, 409 for a license that is not valid now."""
    grantor = _grantor(p, holder)
    grant, license = _service(p).create(grantor, license_identifier=body.license, agency_code=body.agency,
                                        purpose=body.purpose, valid_until=body.valid_until, now=_now())
    response.headers["Location"] = f"/api/v1/me/grants/{grant.id}"
    return _grant_view(grant, license=license.identifier, agency=body.agency, accesses=0)


@router.get("/me/grants", response_model=list[GrantView], summary="Your grants", tags=["holder"])
def list_grants(holder: Holder, p: Annotated[Platform, Depends(platform)]) -> list[GrantView]:
    """Every grant you made, newest first, live or not, with how often each was used."""
    return [_grant_view(g, license=ident, agency=code, accesses=n)
            for g, ident, code, n in _holder_grants(p, _grantor(p, holder))]


@router.delete("/me/grants/{grant_id}", response_model=GrantView, summary="Withdraw a grant", tags=["holder"])
def withdraw_grant(grant_id: GrantId, holder: Holder, p: Annotated[Platform, Depends(platform)]) -> GrantView:
    """End a grant now. Idempotent: withdrawing it again answers the same (first) withdrawal time.
    404 ``grant_not_found`` for a grant you did not make."""
    grantor = _grantor(p, holder)
    _service(p).withdraw(grantor, grant_id, now=_now())
    return _one(p, grantor, grant_id)


@router.get("/me/grants/{grant_id}/accesses", response_model=list[AccessView], summary="A grant's access log",
            tags=["holder"])
def grant_accesses(grant_id: GrantId, holder: Holder, p: Annotated[Platform, Depends(platform)]) -> list[AccessView]:
    """Every fetch the agency made under the grant, oldest first: which client, the purpose it stated,
    what (license data or PDF), when."""
    grant = _service(p).own(_grantor(p, holder), grant_id)
    with p.db.transaction() as connection:
        accesses = SqlGrantStore(connection).accesses(grant.id)
    return [_access_view(a) for a in accesses]


def _access_view(access: AccessRecord) -> AccessView:
    return AccessView(client_id=access.client_id, purpose=access.purpose, what=access.what, at=access.at)


# -- the agency --------------------------------------------------------------------------------------


@router.get("/granted", response_model=list[GrantedView], summary="Grants live for your agency")
def granted(token: Agency, p: Annotated[Platform, Depends(platform)]) -> list[GrantedView]:
    """The grants holders made to the calling agency that are live now, soonest to end first."""
    with p.db.transaction() as connection:
        found = SqlGrantStore(connection).live_grants_for(token.agency_id, _now())
    return [GrantedView(grant_id=g.id, license=license.identifier, type_code=license.type_code,
                        holder_name=license.holder_name, purpose=g.purpose, valid_until=g.valid_until,
                        license_url=f"/api/v1/granted/{g.id}/license", pdf_url=f"/api/v1/granted/{g.id}/pdf")
            for g, license in found]


@router.get("/granted/{grant_id}/license", response_model=GrantedLicense, summary="Fetch a granted license")
def granted_license(grant_id: GrantId, purpose: Purpose, token: Agency,
                    p: Annotated[Platform, Depends(platform)]) -> GrantedLicense:
    """The license's current fields, status and versions; recorded with the stated ``purpose``.
    404 ``grant_not_found`` (no such grant for this agency), 403 ``grant_not_live`` (withdrawn or
    expired) or ``grant_purpose_mismatch``."""
    license, version, grant = _service(p).access(grant_id, Accessor(token.agency_id, token.client_id),
                                                 purpose=purpose, what="license", now=_now())
    with p.db.transaction() as connection:
        store = SqlLicenseStore(connection)
        versions = [store.version(license.id, n) for n in range(1, license.version + 1)]
    return GrantedLicense(
        grant_id=grant.id, purpose=grant.purpose, identifier=license.identifier, type_code=license.type_code,
        issuer_code=license.issuer_code, holder_kind=license.holder_kind, holder_name=license.holder_name,
        status=effective_status(license, date.today()), status_reason=license.status_reason,
        version=license.version, valid_until=license.valid_until,
        fields=license_service(p).cipher.decrypt(version),
        versions=[_version_view(p, v, license.version) for v in versions if v is not None],
    )


@router.get("/granted/{grant_id}/pdf", response_class=Response, summary="Download a granted license's PDF",
            responses={200: {"content": {PDF: {}}, "description": "The current version's signed PDF as issued."}})
def granted_pdf(grant_id: GrantId, purpose: Purpose, token: Agency, p: Annotated[Platform, Depends(platform)]
                ) -> Response:
    """The signed PDF of the license's current version; recorded with the stated ``purpose``."""
    _, version, _ = _service(p).access(grant_id, Accessor(token.agency_id, token.client_id),
                                       purpose=purpose, what="pdf", now=_now())
    name = version.identifier.replace(".", "_")
    return Response(blob_store(p).get(version.pdf_sha256), media_type=PDF,
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"',
                             "ETag": f'"{version.pdf_sha256}"'})
