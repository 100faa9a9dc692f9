"""CONTRACT (issue 7, used by other features such as authorized-use grants): the logged-in holder.

    from api.holder import HolderPrincipal, current_holder

    @router.get("/api/v1/me/...")
    def route(holder: Annotated[HolderPrincipal, Depends(current_holder)]): ...

``current_holder`` takes the bearer login token a citizen or enterprise got from
``POST /api/v1/auth/login`` for the platform's own audience (``PLATFORM_AUDIENCE``, "eauth"), verifies
it against the platform's login keys, re-reads the certificate it was issued for (a certificate revoked
or suspended since the login ends the session) and returns who the holder is. Anything else raises
``InvalidToken`` (401 problem ``invalid_token``). The fields of ``HolderPrincipal`` are stable.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import platform
from api.platform import Platform
from eauth.errors import InvalidToken

#: The audience of login tokens for the platform's own holder endpoints (``/api/v1/me``).
PLATFORM_AUDIENCE = "eauth"

_bearer = HTTPBearer(auto_error=False, scheme_name="LoginToken",
                     description="Login token from POST /api/v1/auth/login with audience 'eauth'")


@dataclass(frozen=True, slots=True)
class HolderPrincipal:
    """A citizen or enterprise logged in with its certificate."""

    #: Pseudonymous, stable per identity (HMAC of kind and number under a platform secret; the
    #: serialNumber its certificates carry): the same across certificates, renewals and re-keys.
    subject_id: str
    #: "citizen_id" (GB 11643, a person) or "credit_code" (GB 32100, an enterprise).
    id_kind: str
    #: The real identity number, for server-side look-ups only: never put it in a response or a log.
    id_number: str
    #: The holder's name as registered.
    name: str
    #: Serial (lower-case hex) of the certificate the holder logged in with.
    certificate_serial: str
    #: When the login token expires (seconds since the epoch).
    expires_at: int
    #: The token's ``jti``.
    token_id: str

    @property
    def subject_kind(self) -> str:
        """``ca.profiles.SubjectKind`` value: "person" or "enterprise" (the kind licenses are held by)."""
        return "person" if self.id_kind == "citizen_id" else "enterprise"


async def current_holder(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    p: Platform = Depends(platform),
) -> HolderPrincipal:
    """The holder of the bearer login token (audience "eauth"); InvalidToken otherwise."""
    from api.login import login_service  # the service imports this module's types

    if credentials is None:
        raise InvalidToken("missing bearer login token")
    return login_service(p).holder(credentials.credentials)
