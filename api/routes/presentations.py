"""Checking a license presentation (亮证): the API for relying systems (scope ``verify``, recorded)
and the public page the presentation's QR leads to (``/p/{token}``: plain HTML, no JavaScript). Both
show only the fields the holder chose, and the license's current status."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.deps import platform, scoped
from api.licenses import qr_public_keys
from api.platform import Platform
from api.recording import record_presentation
from api.routes.verify import _COLOURS, _PAGE_HEADERS, _lookup, status_page
from api.tokens import AccessToken
from verify.presentation import PresentationReport, verify_presentation_token
from verify.qr import STATUS_TEXT

router = APIRouter(tags=["verification"])
Token = Annotated[str, Path(max_length=4096, description="The presentation token (compact JWS).")]
_TEXT = STATUS_TEXT | {"expired": ("已过期", "Expired"), "invalid": ("亮证码无效", "Invalid presentation")}


class PresentationReportView(BaseModel):
    status: str = Field(description="The license's current status (valid, suspended, revoked, cancelled, expired, "
                                    "superseded, unknown) for a genuine presentation; expired or invalid otherwise.")
    valid: bool
    detail: str
    error_code: str | None = None
    reason: str | None = None
    license: str | None = None
    type_code: str | None = None
    type_name: str | None = None
    issuer_code: str | None = None
    issuer_name: str | None = None
    fields: dict[str, str] | None = Field(None, description="Only the fields the holder chose to show.")
    expires_at: datetime | None = None


def now() -> float:
    """The verification time, seconds since the epoch (a function so that tests can move it)."""
    return time.time()


def check(p: Platform, token: str) -> PresentationReport:
    return verify_presentation_token(token, keys=qr_public_keys(p), lookup=_lookup(p), today=date.today(),
                                     now=now())


def _view(report: PresentationReport) -> PresentationReportView:
    claims = report.claims
    values = {} if claims is None else {
        "license": claims.identifier, "type_code": claims.type_code, "issuer_code": claims.issuer_code,
        "fields": dict(claims.fields), "expires_at": datetime.fromtimestamp(claims.expires_at, timezone.utc)}
    return PresentationReportView(status=report.status, valid=report.valid, detail=report.detail,
                                  error_code=report.error_code, reason=report.reason, type_name=report.type_name,
                                  issuer_name=report.issuer_name, **values)


@router.get("/api/v1/verify/presentation/{token}", response_model=PresentationReportView,
            summary="Verify a license presentation")
async def verify_presentation_route(
    token: Token,
    p: Annotated[Platform, Depends(platform)],
    caller: Annotated[AccessToken, Depends(scoped("verify"))],
) -> PresentationReportView:
    """The presentation's signature and expiry, then the license's current status. Always 200 with a
    report; ``valid`` only for an unexpired, genuine presentation of a license valid now."""
    report = check(p, token)
    await record_presentation(p, caller, identifier=report.claims.identifier if report.claims else None,
                        result=report.status)
    return _view(report)


@router.get("/p/{token}", response_class=HTMLResponse, summary="Public page of a license presentation")
async def presentation_page(token: Token, p: Annotated[Platform, Depends(platform)]) -> HTMLResponse:
    """What a relying party sees when it scans a holder's presentation QR: the license's status now and
    only the fields the holder chose; readable on a phone, no JavaScript."""
    return HTMLResponse(_page(check(p, token)), headers=_PAGE_HEADERS)


def _page(report: PresentationReport) -> str:
    rows: list[tuple[str, str]] = []
    if report.claims is not None:
        claims = report.claims
        rows = [("证照类型 Type", report.type_name or claims.type_code),
                ("发证机关 Issuer", report.issuer_name or claims.issuer_code),
                ("证照编号 Identifier", claims.identifier),
                *claims.fields.items(),
                ("亮证有效至 Shown until",
                 datetime.fromtimestamp(claims.expires_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]
    return status_page(title_zh="亮证核验", title_en="License presentation", status=report.status,
                       status_text=_TEXT[report.status], colour=_COLOURS.get(report.status, "#b00020"),
                       rows=rows, detail=report.detail)
