"""Authorized use (授权用证): a holder grants one agency access to one of their licenses, for a stated
purpose, until a time; the agency fetches it with its client credentials only while the grant is live,
stating the purpose each time, and every access is recorded.

    service = GrantService(transaction=...)
    grant = service.create(holder, license_identifier=..., agency_code=..., purpose=..., valid_until=..., now=now)
    license, version, grant = service.access(grant.id, accessor, purpose=..., what="license", now=now)

A grant is *live* while it is not withdrawn and ``valid_until`` is still ahead. It names the license, not
a version: after an amendment the agency sees the current version. A grant outlives a change of the
license's status on purpose: an agency granted a license that was revoked since still fetches it and is
told ``revoked`` (what it needs to know to refuse the application), but a new grant is only made for a
license that is valid now. A refused access (no grant, another agency's, withdrawn, expired, wrong
purpose) is not an access: it goes to the audit trail, not to the grant's access log.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from eauth.errors import (
    GrantNotFound,
    GrantNotLive,
    GrantPurposeMismatch,
    InvalidInput,
    LicenseStatusConflict,
    NotFound,
)
from licenses.issuance import effective_status
from licenses.records import LicenseRecord, VersionRecord

#: Longest purpose, in characters.
MAX_PURPOSE = 200
#: Longest a grant may last.
MAX_VALIDITY = timedelta(days=366)
#: What an agency can fetch under a grant.
WHATS = ("license", "pdf")


@dataclass(frozen=True, slots=True)
class Grantor:
    """The holder making or withdrawing a grant: the license holder kind and blind index (as the wallet
    finds licenses by), and the audit actor name (``holder:<subject id>``)."""

    holder_kind: str
    holder_index: str
    actor: str


@dataclass(frozen=True, slots=True)
class Accessor:
    """The agency client fetching under a grant."""

    agency_id: int
    client_id: str


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """A grant of license ``license_id`` to agency ``agency_id``; ``withdrawn_at`` once withdrawn."""

    id: str
    license_id: str
    holder_kind: str
    holder_index: str
    agency_id: int
    purpose: str
    valid_until: datetime
    created_at: datetime
    withdrawn_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """``live``, ``withdrawn`` or ``expired``."""
        if self.withdrawn_at is not None:
            return "withdrawn"
        return "live" if now < self.valid_until else "expired"


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One fetch under a grant: by which client, for what stated purpose, what, when."""

    grant_id: str
    agency_id: int
    client_id: str
    purpose: str
    what: str
    at: datetime


class GrantStore(Protocol):
    """Grants and their accesses, within one transaction (``store.grant_store``)."""

    def license(self, license_id: str) -> LicenseRecord | None: ...

    def license_by_identifier(self, identifier: str) -> tuple[LicenseRecord, VersionRecord] | None: ...

    def version(self, license_id: str, version: int) -> VersionRecord | None: ...

    def agency_id(self, code: str) -> int | None: ...

    def add_grant(self, grant: GrantRecord) -> None: ...

    def grant(self, grant_id: str, *, for_update: bool = False) -> GrantRecord | None: ...

    def withdraw(self, grant_id: str, at: datetime) -> None: ...

    def add_access(self, access: AccessRecord) -> None: ...

    def audit(self, *, actor: str, action: str, subject: str, details: dict) -> None:
        """Append to the audit trail in this transaction."""
        ...


GrantTransaction = Callable[[], AbstractContextManager[GrantStore]]


def clean_purpose(purpose: str) -> str:
    """The purpose as stored and compared: trimmed, NFC, 1 to ``MAX_PURPOSE`` printable characters."""
    text = unicodedata.normalize("NFC", purpose.strip())
    if not text:
        raise InvalidInput("a grant needs a purpose", field="purpose")
    if len(text) > MAX_PURPOSE:
        raise InvalidInput(f"purpose must be at most {MAX_PURPOSE} characters", field="purpose")
    if not text.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise InvalidInput("purpose must be printable text (no control characters)", field="purpose")
    return text


def check_validity(valid_until: datetime, now: datetime) -> datetime:
    """``valid_until`` if it is timezone-aware, after ``now`` and at most ``MAX_VALIDITY`` ahead."""
    if valid_until.tzinfo is None:
        raise InvalidInput("valid_until needs a time zone (e.g. 2027-01-01T00:00:00Z)", field="valid_until")
    if valid_until <= now:
        raise InvalidInput("valid_until must be in the future", field="valid_until")
    if valid_until > now + MAX_VALIDITY:
        raise InvalidInput(f"a grant lasts at most {MAX_VALIDITY.days} days", field="valid_until")
    return valid_until


def check_access(grant: GrantRecord | None, accessor: Accessor, *, purpose: str, now: datetime) -> GrantRecord:
    """``grant`` if ``accessor``'s agency may fetch under it now for ``purpose``: GrantNotFound for no
    grant or another agency's, GrantNotLive when withdrawn or expired, GrantPurposeMismatch otherwise."""
    if grant is None or grant.agency_id != accessor.agency_id:
        raise GrantNotFound("no grant with this id for your agency")
    state = grant.state(now)
    if state != "live":
        raise GrantNotLive(f"the grant is {state}", reason=state)
    if clean_purpose(purpose) != grant.purpose:
        raise GrantPurposeMismatch("state the purpose the holder granted access for", field="purpose")
    return grant


class GrantService:
    """Makes, withdraws and serves grants; each operation is one transaction with its audit entry."""

    def __init__(self, *, transaction: GrantTransaction) -> None:
        self.transaction = transaction

    def create(self, grantor: Grantor, *, license_identifier: str, agency_code: str, purpose: str,
               valid_until: datetime, now: datetime) -> tuple[GrantRecord, LicenseRecord]:
        """A new grant of the grantor's license (any version's identifier) to the agency ``agency_code``;
        NotFound if the license is not the grantor's or the agency unknown, LicenseStatusConflict unless
        the license is valid now."""
        purpose = clean_purpose(purpose)
        check_validity(valid_until, now)
        with self.transaction() as store:
            found = store.license_by_identifier(license_identifier)
            if found is None or (found[0].holder_kind, found[0].holder_index) != (grantor.holder_kind,
                                                                                 grantor.holder_index):
                raise NotFound(f"you hold no license {license_identifier}", field="license")
            license = found[0]
            status = effective_status(license, now.date())
            if status != "valid":
                raise LicenseStatusConflict(f"license {license.identifier} is {status}: it cannot be granted",
                                            license_status=status)
            agency_id = store.agency_id(agency_code)
            if agency_id is None:
                raise NotFound(f"no agency with code {agency_code!r}", field="agency")
            grant = GrantRecord(id=secrets.token_hex(16), license_id=license.id, holder_kind=grantor.holder_kind,
                                holder_index=grantor.holder_index, agency_id=agency_id, purpose=purpose,
                                valid_until=valid_until, created_at=now)
            store.add_grant(grant)
            store.audit(actor=grantor.actor, action="grant.create", subject=grant.id,
                        details={"license": license.identifier, "agency": agency_code, "purpose": purpose,
                                 "valid_until": valid_until})
        return grant, license

    def withdraw(self, grantor: Grantor, grant_id: str, *, now: datetime) -> GrantRecord:
        """Withdraw one of the grantor's grants; idempotent: a withdrawn grant stays as it was (same
        ``withdrawn_at``, no second audit entry). GrantNotFound for another holder's grant."""
        with self.transaction() as store:
            grant = self._own(store, grantor, grant_id, for_update=True)
            if grant.withdrawn_at is not None:
                return grant
            store.withdraw(grant.id, now)
            store.audit(actor=grantor.actor, action="grant.withdraw", subject=grant.id, details={})
        return GrantRecord(**{**_fields(grant), "withdrawn_at": now})

    def own(self, grantor: Grantor, grant_id: str) -> GrantRecord:
        """One of the grantor's grants; GrantNotFound for anyone else's."""
        with self.transaction() as store:
            return self._own(store, grantor, grant_id)

    def access(self, grant_id: str, accessor: Accessor, *, purpose: str, what: str,
               now: datetime) -> tuple[LicenseRecord, VersionRecord, GrantRecord]:
        """The granted license and its current version, if the grant lets ``accessor`` fetch it now for
        ``purpose`` (see ``check_access``), with the access recorded in the same transaction. A refusal
        is recorded in the audit trail (in a transaction of its own) and raised."""
        if what not in WHATS:
            raise InvalidInput(f"unknown access {what!r}")
        try:
            with self.transaction() as store:
                grant = check_access(store.grant(grant_id), accessor, purpose=purpose, now=now)
                license = store.license(grant.license_id)
                version = store.version(license.id, license.version)
                store.add_access(AccessRecord(grant.id, accessor.agency_id, accessor.client_id, grant.purpose,
                                              what, now))
                store.audit(actor=f"client:{accessor.client_id}", action="grant.access", subject=grant.id,
                            details={"what": what, "purpose": grant.purpose, "license": license.identifier})
        except (GrantNotFound, GrantNotLive, GrantPurposeMismatch) as refusal:
            with self.transaction() as store:
                store.audit(actor=f"client:{accessor.client_id}", action="grant.access_refused",
                            subject=grant_id[:64], details={"what": what, "code": refusal.code})
            raise
        return license, version, grant

    @staticmethod
    def _own(store: GrantStore, grantor: Grantor, grant_id: str, *, for_update: bool = False) -> GrantRecord:
        grant = store.grant(grant_id, for_update=for_update)
        if grant is None or (grant.holder_kind, grant.holder_index) != (grantor.holder_kind, grantor.holder_index):
            raise GrantNotFound(f"you made no grant {grant_id}")
        return grant


def _fields(grant: GrantRecord) -> dict:
    return {name: getattr(grant, name) for name in GrantRecord.__slots__}
