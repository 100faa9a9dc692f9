"""Request dependencies: the platform, and the caller's access token with a required scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.platform import Platform
from api.tokens import AccessToken
from eauth.errors import InvalidToken

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/oauth/token")


async def platform(request: Request) -> Platform:
    # async (no I/O): a sync dependency would cost a thread-pool round trip on every request.
    return request.app.state.platform


async def authenticated(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    p: Platform = Depends(platform),
) -> AccessToken:
    """The bearer token, whatever its scopes (for an endpoint that decides by scope itself)."""
    if credentials is None:
        raise InvalidToken("missing bearer access token")
    return p.tokens.verify(credentials.credentials)


def scoped(scope: str) -> Callable[..., AccessToken]:
    """A dependency that authenticates the bearer token and requires ``scope``."""

    async def dependency(token: AccessToken = Depends(authenticated)) -> AccessToken:
        token.require(scope)
        return token

    return dependency
