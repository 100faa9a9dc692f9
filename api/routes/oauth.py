"""OAuth2 client-credentials token endpoint (RFC 6749 §4.4) for agency systems."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Header, Response
from pydantic import BaseModel

from api.deps import platform
from api.platform import Platform
from eauth.errors import InvalidClient, InvalidScope
from store.agencies import authenticate_client

router = APIRouter(prefix="/api/v1/oauth", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic authorization header") from None
    return user, password


@router.post("/token", response_model=TokenResponse, summary="Client-credentials grant")
def token(
    response: Response,
    p: Annotated[Platform, Depends(platform)],
    grant_type: Annotated[Literal["client_credentials"], Form()],
    scope: Annotated[str | None, Form(max_length=1000)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    """Exchange a client id and secret (HTTP Basic or form fields) for a short-lived ES256 access token
    with the requested scopes (default: all the client has)."""
    credentials = _basic_credentials(authorization) or (client_id, client_secret)
    if not credentials[0] or not credentials[1]:
        raise InvalidClient("client authentication required (HTTP Basic or client_id/client_secret)")
    with p.db.session() as session:
        client = authenticate_client(session, *credentials)
    requested = frozenset(scope.split()) if scope else client.scopes
    if not requested <= client.scopes:
        missing = ", ".join(sorted(requested - client.scopes))
        raise InvalidScope(f"client {client.client_id} may not request scope(s): {missing}")
    access_token, ttl = p.tokens.issue(client_id=client.client_id, agency_id=client.agency.id, scopes=requested)
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 §5.1: tokens must not be cached
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(access_token=access_token, expires_in=ttl, scope=" ".join(sorted(requested)))
