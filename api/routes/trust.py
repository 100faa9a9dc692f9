"""``GET /api/v1/trust-bundle``: the platform's trust bundle (``verify.bundle``), public and
unauthenticated: what a relying party needs to verify offline (``eauth verify --trust``) and what
another platform imports for mutual recognition; and the operator's imports of other platforms'
bundles under ``/api/v1/trust/platforms`` (scope ``trust:manage``, ``api.mutual``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import platform, scoped
from api.mutual import ImportedPlatform, import_bundle, list_platforms, remove_platform
from api.platform import Platform
from api.tokens import AccessToken
from api.trust import trust_bundle

router = APIRouter(tags=["public"])

BUNDLE_PATH = "/api/v1/trust-bundle"


@router.get(BUNDLE_PATH, summary="The platform's signed trust bundle (roots, CA, OCSP and TSA certificates, QR and login keys)",
            response_class=Response, responses={200: {"content": {"application/json": {}}}})
def get_trust_bundle(p: Annotated[Platform, Depends(platform)]) -> Response:
    """A versioned JSON document: ``format`` ``eauth-trust-bundle``, ``version`` 2, ``platform`` (name,
    id: the SHA-256 of the root certificate, base URL), ``created_at``, ``certificates`` (name, role,
    PEM), ``qr_keys`` and ``login_keys`` (JWKS), and ``signature`` by the root key over the rest. See
    docs/trust-model.md."""
    bundle = trust_bundle(p)
    return Response(bundle.to_json().encode(), media_type="application/json",
                    headers={"Cache-Control": "public, max-age=3600",
                             "Content-Disposition": 'inline; filename="trust-bundle.json"'})


# -- mutual recognition: the operator's imports of other platforms' bundles (scope trust:manage) ------

PLATFORMS_PATH = "/api/v1/trust/platforms"


class TrustedPlatformView(BaseModel):
    name: str = Field(description="This platform's name for it: what verification reports call it.")
    platform_id: str = Field(description="SHA-256 of its root certificate (hex).")
    base_url: str | None = Field(description="Its public base URL: where its license statuses are checked.")
    bundle_platform_name: str = Field(description="The name it gives itself in its bundle.")
    imported_at: datetime
    certificates: int
    qr_keys: int
    login_keys: int


class TrustImportRequest(BaseModel):
    name: str = Field(max_length=100, description="What to call the platform here.")
    root_sha256: str = Field(max_length=200, description="The SHA-256 of its root certificate, confirmed with its "
                                                         "operator out of band (hex, colons allowed).")
    bundle: dict = Field(description="Its trust bundle (version 2, signed), as GET /api/v1/trust-bundle serves it.")


def _view(t: ImportedPlatform) -> TrustedPlatformView:
    return TrustedPlatformView(name=t.name, platform_id=t.platform_id, base_url=t.base_url,
                               bundle_platform_name=t.bundle.platform_name, imported_at=t.imported_at,
                               certificates=len(t.bundle.certificates), qr_keys=len(t.bundle.qr_public_keys),
                               login_keys=len(t.bundle.login_public_keys))


@router.get(PLATFORMS_PATH, response_model=list[TrustedPlatformView], tags=["trust"],
            summary="The platforms this one trusts (mutual recognition)")
def list_trusted(p: Annotated[Platform, Depends(platform)],
                 _: Annotated[AccessToken, Depends(scoped("trust:manage"))]) -> list[TrustedPlatformView]:
    """Every imported trust bundle, oldest first."""
    return [_view(t) for t in list_platforms(p)]


@router.post(PLATFORMS_PATH, response_model=TrustedPlatformView, status_code=201, tags=["trust"],
             summary="Trust another platform: import its signed trust bundle")
def import_trusted(body: TrustImportRequest, p: Annotated[Platform, Depends(platform)],
                   token: Annotated[AccessToken, Depends(scoped("trust:manage"))]) -> TrustedPlatformView:
    """Its certificates, PDFs, QR and login tokens then verify here, named ``name``. 400
    ``invalid_trust_bundle`` (with ``path``: unsigned, tampered, malformed), 400 ``trust_import_refused``
    (``reason``: fingerprint_mismatch, own_platform, root_expired), 409 ``platform_already_trusted``."""
    done = import_bundle(p, json.dumps(body.bundle, ensure_ascii=False), name=body.name,
                         root_sha256=body.root_sha256, actor=f"client:{token.client_id}")
    return _view(done)


@router.delete(PLATFORMS_PATH + "/{name}", status_code=204, tags=["trust"],
               summary="Stop trusting an imported platform")
def remove_trusted(name: Annotated[str, PathParam(max_length=100)], p: Annotated[Platform, Depends(platform)],
                   token: Annotated[AccessToken, Depends(scoped("trust:manage"))]) -> Response:
    """Its certificates, licenses and tokens no longer verify (in every API process within
    ``trusted_platforms_refresh_seconds``). 404 ``trusted_platform_not_found``."""
    remove_platform(p, name, actor=f"client:{token.client_id}")
    return Response(status_code=204)
