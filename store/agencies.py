"""Agencies and their OAuth2 clients."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from eauth.errors import AlreadyExists, InvalidClient, InvalidInput, NotFound
from store import audit
from store.models import Agency, ApiClient

#: Every scope a client can be granted, with what it allows.
SCOPES = {
    "certificates:issue": "request certificates for subjects the agency has verified (registration authority)",
    "certificates:read": "fetch certificates and list them by subject",
    "certificates:revoke": "suspend, reinstate and revoke certificates the agency registered",
    "documents:sign": "seal the agency's own PDF documents with its agency-seal certificate",
    "licenses:granted": "fetch licenses their holders granted the agency access to (授权用证), stating the purpose",
    "licenses:issue": "define the agency's license types, issue, amend and import its licenses, set its seal image",
    "licenses:read": "read the agency's own licenses, their versions, events and PDFs",
    "licenses:revoke": "suspend, reinstate, revoke and cancel the agency's own licenses",
    "licenses:wallet": "list and download a holder's licenses from every agency (until holders log in themselves)",
    "verify": "verify licenses (QR tokens, presentations), certificates and login tokens as a relying party",
    "audit:read": "read and verify the platform's audit trail (operator)",
    "trust:manage": "import, list and remove other platforms' trust bundles (mutual recognition; operator)",
    "stats:read": "issued, verified and revoked counts of every agency (operator; licenses:read gives one's own)",
}


@dataclass(frozen=True, slots=True)
class AgencyRecord:
    id: int
    code: str
    name: str
    credit_code: str | None


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    agency: AgencyRecord
    scopes: frozenset[str]
    name: str


def _agency(row: Agency) -> AgencyRecord:
    return AgencyRecord(row.id, row.code, row.name, row.credit_code)


def add_agency(session: Session, *, code: str, name: str, credit_code: str | None) -> AgencyRecord:
    """Register an agency; AlreadyExists if the code or credit code is taken."""
    if not code or len(code) > 64 or not code.replace("-", "").replace("_", "").isalnum() or not code.isascii():
        raise InvalidInput("agency code must be 1-64 ASCII letters, digits, '-' or '_'")
    row = Agency(code=code, name=name, credit_code=credit_code, created_at=datetime.now(timezone.utc))
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise AlreadyExists(f"an agency with code {code!r} or credit code {credit_code} already exists") from None
    audit.record(session, actor="operator", action="agency.add", subject=f"agency:{row.id}",
                 details={"code": code, "name": name, "credit_code": credit_code})
    return _agency(row)


def agency_by_code(session: Session, code: str) -> AgencyRecord:
    row = session.scalar(select(Agency).where(Agency.code == code))
    if row is None:
        raise NotFound(f"no agency with code {code!r}")
    return _agency(row)


def agency_by_id(session: Session, agency_id: int) -> AgencyRecord:
    row = session.get(Agency, agency_id)
    if row is None:
        raise NotFound(f"no agency {agency_id}")
    return _agency(row)


def list_agencies(session: Session) -> list[AgencyRecord]:
    return [_agency(r) for r in session.scalars(select(Agency).order_by(Agency.id))]


def _secret_hash(secret: str) -> str:
    # Client secrets are 256-bit random values, not passwords: a plain SHA-256 is enough and keeps
    # the token endpoint fast; a slow password hash would only slow legitimate clients.
    return hashlib.sha256(secret.encode()).hexdigest()


def add_client(session: Session, *, agency_code: str, name: str, scopes: set[str]) -> tuple[ClientRecord, str]:
    """Register a client for an agency; returns it and its secret, which is shown only this once."""
    unknown = scopes - SCOPES.keys()
    if unknown:
        raise InvalidInput(f"unknown scope(s) {', '.join(sorted(unknown))}; known: {', '.join(SCOPES)}")
    if not scopes:
        raise InvalidInput("a client needs at least one scope")
    agency = agency_by_code(session, agency_code)
    client_id = f"{agency.code}-{secrets.token_hex(4)}"
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiClient(
            client_id=client_id,
            agency_id=agency.id,
            secret_sha256=_secret_hash(secret),
            scopes=" ".join(sorted(scopes)),
            name=name,
            disabled=False,
            created_at=datetime.now(timezone.utc),
        )
    )
    session.flush()
    audit.record(session, actor="operator", action="client.add", subject=f"client:{client_id}",
                 details={"agency_id": agency.id, "name": name, "scopes": sorted(scopes)})
    return ClientRecord(client_id, agency, frozenset(scopes), name), secret


def authenticate_client(session: Session, client_id: str, secret: str) -> ClientRecord:
    """The client if ``secret`` is its secret; InvalidClient (without saying which part was wrong) if not."""
    # An id no client can have (NUL, control characters, over-long) is unknown, not a query: PostgreSQL
    # refuses NUL in text parameters with an error that would surface as a 500.
    possible = len(client_id) <= 64 and client_id.isprintable()
    row = session.get(ApiClient, client_id) if possible else None
    expected = row.secret_sha256 if row is not None else "0" * 64
    if row is None or row.disabled or not hmac.compare_digest(_secret_hash(secret), expected):
        raise InvalidClient("unknown client or wrong secret")
    return ClientRecord(row.client_id, _agency(session.get(Agency, row.agency_id)), frozenset(row.scopes.split()), row.name)
