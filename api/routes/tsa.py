"""The RFC 3161 time-stamping authority over HTTP (RFC 3161 §3.4): public, unauthenticated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.exceptions import HTTPException

from api.deps import platform
from api.platform import Platform

router = APIRouter(tags=["public"])

QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"


@router.post(
    "/tsa",
    summary="Time-stamp a hash (RFC 3161)",
    response_class=Response,
    openapi_extra={
        "requestBody": {"required": True, "content": {QUERY: {"schema": {"type": "string", "format": "binary"}}}}
    },
    responses={
        200: {"content": {REPLY: {"schema": {"type": "string", "format": "binary"}}},
              "description": "A DER TimeStampResp: granted with a token, or rejection with its failInfo."},
        413: {"description": "Body over EAUTH_MAX_REQUEST_BYTES (problem+json)."},
        415: {"description": f"Content-Type is not {QUERY} (problem+json)."},
    },
)
async def timestamp(request: Request, p: Annotated[Platform, Depends(platform)]) -> Response:
    """A DER TimeStampReq in, a DER TimeStampResp out. A malformed or refused query is answered 200
    with status ``rejection`` and the failInfo, as RFC 3161 wants, not with an HTTP error."""
    # On the event loop, not in the thread pool: ~0.3 ms of CPU, no I/O (see api/routes/certificates.py).
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != QUERY:
        raise HTTPException(415, f"send a DER TimeStampReq with Content-Type: {QUERY}")
    body = await request.body()
    return Response(p.timestamp_authority().respond(body), media_type=REPLY)
