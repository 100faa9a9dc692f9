"""CRL distribution points: ``GET /crl/{name}.crl``, the URL in every certificate a CA signs."""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response

from api.deps import platform
from api.platform import Platform
from api.schedule import crl_publisher
from ca.crl import CrlPublisher, StoredCrl
from store.crl_store import crl_transactions

router = APIRouter(tags=["public"])

MEDIA_TYPE = "application/pkix-crl"  # RFC 5280 §4.2.1.13, RFC 2585


def _etag(crl: StoredCrl) -> str:
    return f'"{crl.number}"'


def _not_modified(crl: StoredCrl, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110 §13.1: If-None-Match (weak comparison) decides when present, else If-Modified-Since."""
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or _etag(crl) in tags
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and crl.this_update <= since
    return False


@router.get(
    "/crl/{name}.crl",
    summary="A CA's current CRL (DER)",
    response_class=Response,
    responses={
        200: {"content": {MEDIA_TYPE: {}}, "description": "The CRL; made first if none is stored or it is due."},
        304: {"description": "Not modified (If-None-Match with the CRL number as ETag, or If-Modified-Since)."},
        404: {"description": "No CA of that name signs CRLs (problem+json)."},
    },
)
def crl(
    name: Annotated[str, Path(description="CA name: root, citizen, enterprise, seal.")],
    p: Annotated[Platform, Depends(platform)],
    if_none_match: Annotated[str | None, Header()] = None,
    if_modified_since: Annotated[str | None, Header()] = None,
) -> Response:
    publisher = crl_publisher(p)
    transaction = crl_transactions(p.db)
    # The header first, without the CRL's bytes: a conditional request that matches reads no more.
    current = publisher.current(transaction, name, with_der=False)
    if _not_modified(current, if_none_match, if_modified_since):
        return Response(status_code=304, headers=_headers(current, publisher))
    if current.der is None:
        current = publisher.current(transaction, name)  # possibly newer still: the headers follow it
    return Response(current.der, media_type=MEDIA_TYPE, headers=_headers(current, publisher))


def _headers(crl: StoredCrl, publisher: CrlPublisher) -> dict[str, str]:
    # Caches keep the CRL until a new one is due (nextUpdate − margin), not until nextUpdate: a
    # relying party then always has a CRL with time left on it.
    return {
        "Cache-Control": f"public, max-age={publisher.policy.fresh_for(crl, publisher.clock())}",
        "ETag": _etag(crl),
        "Last-Modified": format_datetime(crl.this_update, usegmt=True),
    }
