"""``GET /api/v1/trust-bundle``: the platform's trust bundle (``verify.bundle``), public and
unauthenticated: what a relying party needs to verify offline (``eauth verify --trust``) and what
another platform imports for mutual recognition."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from api.deps import platform
from api.platform import Platform
from api.trust import trust_bundle

router = APIRouter(tags=["public"])

BUNDLE_PATH = "/api/v1/trust-bundle"


@router.get(BUNDLE_PATH, summary="The platform's trust bundle (roots, CA, OCSP and TSA certificates, QR keys)",
            response_class=Response, responses={200: {"content": {"application/json": {}}}})
def get_trust_bundle(p: Annotated[Platform, Depends(platform)]) -> Response:
    """A versioned JSON document: ``format`` ``eauth-trust-bundle``, ``version`` 1, ``platform`` (name,
    id: the SHA-256 of the root certificate, base URL), ``created_at``, ``certificates`` (name, role,
    PEM) and ``qr_keys`` (a JWKS). See docs/trust-model.md."""
    bundle = trust_bundle(p)
    return Response(bundle.to_json().encode(), media_type="application/json",
                    headers={"Cache-Control": "public, max-age=3600",
                             "Content-Disposition": 'inline; filename="trust-bundle.json"'})
