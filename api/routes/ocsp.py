"""OCSP over HTTP (RFC 6960 appendix A): ``POST /ocsp`` with the DER request as body, and
``GET /ocsp/{base64 of the DER request}``; the URL in every certificate's AIA extension.

Every answer is an OCSP response with HTTP 200, errors included (malformedRequest, unauthorized,
tryLater, internalError): an OCSP client reads the response status, not the HTTP one. Only a body
over the size limit gets the platform's 413 problem. GET answers to requests without nonce carry
RFC 5019 caching headers (max-age up to nextUpdate, Expires, Last-Modified, ETag).

The routes are plain Starlette routes, not FastAPI ones (no dependency injection, no pydantic): this
is the platform's hottest endpoint, and FastAPI's per-request machinery would cost more than the
work. They are left out of the OpenAPI document; docs/api.md describes them. The work runs inline on
the event loop, like issuance (see api/routes/certificates.py): a cached answer is one query, a
fresh one a signature (~40 µs for P-256) and one short write.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ca.ocsp import OcspAnswer, OcspResponder, ResponseStatus, error_response
from store.ca_store import SqlCaStore
from store.ocsp_store import SqlOcspStore

log = logging.getLogger("eauth.api")

OCSP_RESPONSE = "application/ocsp-response"


def _service(request: Request) -> tuple[OcspResponder, SqlOcspStore]:
    """The responder of this process, prepared on first use: issuer hashes, responder IDs, signers."""
    service = getattr(request.app.state, "ocsp", None)
    if service is None:
        platform = request.app.state.platform
        settings = platform.settings
        with platform.db.session() as session:
            authorities = SqlCaStore(session).authorities()
        responder = OcspResponder(
            authorities, platform.keys, validity=timedelta(minutes=settings.ocsp_validity_minutes),
            reuse_margin=timedelta(minutes=settings.ocsp_reuse_margin_minutes),
        )
        service = request.app.state.ocsp = (responder, SqlOcspStore(platform.db))
    return service


def _answer(request: Request, der: bytes | None) -> OcspAnswer:
    if der is None:
        return OcspAnswer(error_response(ResponseStatus.MALFORMED_REQUEST), ResponseStatus.MALFORMED_REQUEST)
    try:
        responder, store = _service(request)
    except Exception:  # key store locked, HSM down, no hierarchy: answer, and try again on the next request
        log.exception("OCSP responder unavailable")
        return OcspAnswer(error_response(ResponseStatus.INTERNAL_ERROR), ResponseStatus.INTERNAL_ERROR)
    return responder.respond(der, store)


def _from_url(encoded: str) -> bytes | None:
    """The DER request from the GET path: base64 (the server has already undone the URL encoding).
    Tolerated: the URL-safe alphabet, missing padding, a '+' turned into a space, a trailing slash."""
    text = encoded.replace(" ", "+").replace("-", "+").replace("_", "/")
    for candidate in (text, text[:-1] if text.endswith("/") else None):
        if candidate:
            try:
                return base64.b64decode(candidate + "=" * (-len(candidate) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
    return None


async def ocsp_post(request: Request) -> Response:
    answer = _answer(request, await request.body())
    return Response(answer.der, media_type=OCSP_RESPONSE)


async def ocsp_get(request: Request) -> Response:
    answer = _answer(request, _from_url(request.path_params.get("encoded", "")))
    if answer.next_update is None:
        return Response(answer.der, media_type=OCSP_RESPONSE, headers={"Cache-Control": "no-store"})
    max_age = max(0, int((answer.next_update - datetime.now(timezone.utc)).total_seconds()))
    headers = {
        "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
        "Last-Modified": format_datetime(answer.this_update, usegmt=True),
        "Expires": format_datetime(answer.next_update, usegmt=True),
        "ETag": f'"{hashlib.sha1(answer.der).hexdigest()}"',
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(answer.der, media_type=OCSP_RESPONSE, headers=headers)


router = APIRouter()
router.routes.extend([
    Route("/ocsp", ocsp_post, methods=["POST"], name="ocsp_post"),
    Route("/ocsp", ocsp_get, methods=["GET"], name="ocsp_get_empty"),
    Route("/ocsp/{encoded:path}", ocsp_get, methods=["GET"], name="ocsp_get"),
    Route("/ocsp/{encoded:path}", ocsp_post, methods=["POST"], name="ocsp_post_slash"),
])
