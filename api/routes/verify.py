"""Verifying a license's QR token: the API for relying systems (scope ``verify``) and the public page a
phone lands on when it scans the QR (``/v/{token}``: plain HTML, no JavaScript, minimal data)."""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.deps import platform, scoped
from api.licenses import license_service, qr_public_keys
from api.mutual import imported
from api.platform import Platform
from api.recording import record_qr
from api.tokens import AccessToken
from store.license_store import RegistryLookup, SqlLicenseStore
from verify.qr import STATUS_TEXT, ForeignIssuer, QrReport, RegistryEntry, verify_qr

router = APIRouter(tags=["verification"])

Token = Annotated[str, Path(max_length=2048, description="The compact JWS from the license's QR code.")]


class QrLicenseView(BaseModel):
    identifier: str
    type_code: str
    type_name: str | None
    issuer_code: str
    issuer_name: str | None
    holder: str | None
    issued_on: date
    valid_until: date | None
    version: int
    current_identifier: str | None


class ForeignIssuerView(BaseModel):
    name: str = Field(description="The trusted platform that signed the token (its name here).")
    base_url: str | None = Field(description="Where that platform verifies its licenses' status.")


class QrReportView(BaseModel):
    status: str = Field(description="valid, suspended, revoked, cancelled, expired, superseded, unknown, altered, "
                                    "invalid, or foreign (signed by a trusted platform: status checked there).")
    valid: bool
    signature_valid: bool
    detail: str
    error_code: str | None
    license: QrLicenseView | None
    issued_by: ForeignIssuerView | None = Field(None, description="For a foreign token: the platform that issued it.")


def _lookup(p: Platform):
    service, registry = license_service(p), p.kept(_registry)

    def lookup(identifier: str) -> RegistryEntry | None:
        found = registry.entry(identifier)
        if found is None:
            return None
        license, version, issuer = found
        license_type = service.known_type(license.type_code)
        if license_type is None:  # first sight of this type in this process
            with p.db.transaction() as connection:
                license_type = service.license_type(SqlLicenseStore(connection), license.type_code, agency_id=None)
        return RegistryEntry(license=license, version=version, type_name=license_type.name_zh, issuer_name=issuer)

    return lookup


def _registry(p: Platform) -> RegistryLookup:
    return RegistryLookup(p.db)


def check(p: Platform, token: str) -> QrReport:
    foreign = {kid: (key, ForeignIssuer(owner.name, owner.base_url))
               for kid, (key, owner) in imported(p).qr_keys.items()}
    return verify_qr(token, keys=qr_public_keys(p), lookup=_lookup(p), today=date.today(), foreign=foreign)


@router.get("/api/v1/verify/qr/{token}", response_model=QrReportView, summary="Verify a license QR token")
async def verify_qr_token(
    token: Token,
    p: Annotated[Platform, Depends(platform)],
    caller: Annotated[AccessToken, Depends(scoped("verify"))],
) -> QrReportView:
    """The token's signature (offline, with the published QR keys) and the license's current status in
    the registry. Always 200 with a report; ``valid`` is true only for a genuine token of a license
    that is valid now."""
    report = check(p, token)
    await record_qr(p, caller, report)
    return QrReportView(status=report.status, valid=report.valid, signature_valid=report.signature_valid,
                        detail=report.detail, error_code=report.error_code,
                        license=QrLicenseView.model_validate(report.license, from_attributes=True)
                        if report.license else None,
                        issued_by=ForeignIssuerView.model_validate(report.issued_by, from_attributes=True)
                        if report.issued_by else None)


_COLOURS = {"valid": "#1b7f3b", "suspended": "#b26a00", "expired": "#b26a00", "superseded": "#b26a00",
            "unknown": "#555555", "foreign": "#1b5e9f"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",  # the status may change at any time
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/v/{token}", response_class=HTMLResponse, summary="Public verification page (the QR's target)",
            include_in_schema=True)
async def public_page(token: Token, p: Annotated[Platform, Depends(platform)]) -> HTMLResponse:
    """What anyone scanning a license's QR sees: whether it is valid now, the license type, issuer,
    validity and the holder's name masked; readable on a phone, no JavaScript."""
    report = check(p, token)
    return HTMLResponse(_page(report), headers=_PAGE_HEADERS)


def _page(report: QrReport) -> str:
    rows: list[tuple[str, str]] = []
    if report.license is not None:
        license = report.license
        until = license.valid_until.isoformat() if license.valid_until else "长期 Long-term"
        rows = [("证照类型 Type", license.type_name or license.type_code),
                 ("发证机关 Issuer", license.issuer_name or license.issuer_code),
                 ("持证主体 Holder", license.holder or "—"),
                 ("发证日期 Issued", license.issued_on.isoformat()),
                 ("有效期至 Valid until", until),
                 ("证照编号 Identifier", license.identifier)]
        if license.current_identifier:
            rows.append(("当前版本 Current version", license.current_identifier))
        if report.issued_by is not None:
            rows.append(("签发平台 Issuing platform", report.issued_by.name))
            if report.issued_by.base_url:
                rows.append(("状态核验 Check the status at", report.issued_by.base_url))
    return status_page(title_zh="电子证照核验", title_en="License verification", status=report.status,
                       status_text=STATUS_TEXT[report.status], colour=_COLOURS.get(report.status, "#b00020"),
                       rows=rows, detail=report.detail)


def status_page(*, title_zh: str, title_en: str, status: str, status_text: tuple[str, str], colour: str,
                rows: list[tuple[str, str]], detail: str) -> str:
    """The public pages' one layout (a license's QR, a presentation): the status in words and colour
    over a table of what may be shown; plain HTML for a phone, no JavaScript."""
    zh, en = status_text
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title_zh)} {escape(title_en)}</title>
<style>
body{{font-family:system-ui,"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif;margin:0;background:#f4f4f4;color:#222}}
main{{max-width:34rem;margin:0 auto;padding:1rem}}
.status{{background:{colour};color:#fff;border-radius:.5rem;padding:1.2rem;text-align:center}}
.status strong{{display:block;font-size:1.8rem}}
table{{width:100%;border-collapse:collapse;background:#fff;margin-top:1rem;border-radius:.5rem}}
th,td{{text-align:left;padding:.6rem;border-bottom:1px solid #ddd;vertical-align:top}}
th{{width:40%;font-weight:normal;color:#555}}
td{{word-break:break-all}}
p{{font-size:.85rem;color:#555}}
</style></head>
<body><main>
<h1 style="font-size:1.2rem">{escape(title_zh)} <small>{escape(title_en)}</small></h1>
<div class="status" id="status" data-status="{escape(status)}"><strong>{escape(zh)}</strong>{escape(en)}</div>
<table>{table}</table>
<p>{escape(detail)}</p>
</main></body></html>
"""
