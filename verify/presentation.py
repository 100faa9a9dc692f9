"""Verifying a license presentation (亮证): the token offline (``licenses.presentation``), then the
license's current status in the registry. The report carries only what the holder chose to show."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

from eauth.errors import InvalidPresentation
from licenses.issuance import effective_status
from licenses.presentation import PresentationClaims, verify_presentation
from verify.qr import RegistryEntry


@dataclass(frozen=True, slots=True)
class PresentationReport:
    """``status``: the license's current status (``verify.qr.STATUS_TEXT``) for a genuine, unexpired
    presentation; ``expired`` / ``invalid`` for one that is not. ``valid`` only when both hold."""

    status: str
    detail: str
    claims: PresentationClaims | None = None
    type_name: str | None = None
    issuer_name: str | None = None
    error_code: str | None = None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.status == "valid"


def verify_presentation_token(token: str, *, keys: Mapping[str, EllipticCurvePublicKey],
                              lookup: Callable[[str], RegistryEntry | None], today: date,
                              now: float) -> PresentationReport:
    """Never raises for a bad token: the report says why it is not valid."""
    try:
        claims = verify_presentation(token, keys, now=now)
    except InvalidPresentation as exc:
        status = "expired" if exc.extra.get("reason") == "expired" else "invalid"
        return PresentationReport(status=status, detail=exc.detail, error_code=exc.code, reason=exc.extra.get("reason"))
    entry = lookup(claims.identifier)
    if entry is None:
        return PresentationReport(status="unknown", claims=claims,
                                  detail="the presentation is genuine but the registry has no such license")
    status = effective_status(entry.license, today, version=entry.version)
    detail = "genuine, and the license is valid now" if status == "valid" else (
        f"genuine, but the license is {status}"
        + (f": {entry.license.status_reason}" if entry.license.status_reason and status != "superseded" else ""))
    return PresentationReport(status=status, detail=detail, claims=claims, type_name=entry.type_name,
                              issuer_name=entry.issuer_name)
