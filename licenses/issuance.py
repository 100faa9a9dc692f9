"""Issuing and changing electronic licenses: validate → render → sign → store, and the lifecycle.

    service = LicenseService(transaction=..., blobs=..., seals=..., qr=..., secrets=..., public_base_url=...)
    issued = service.issue(issuer, type_code="...", fields={...}, request_key="crm-4711", actor=actor)

A license PDF is a *certification* signature with DocMDP "no changes" at PAdES B-LT by the issuing
agency's seal, so any later edit is detectable and the file verifies with no network. The QR carries
``{public base}/v/{token}``, a short ES256 JWS binding the identifier and a digest of the data.

Transactions are short and the CPU work is outside them: the type and the idempotency key are read,
serials are reserved in blocks in a transaction of their own (a failure later leaves a gap, never a
duplicate), the
PDF is rendered and signed holding no lock, written to the blob store, and only then the record is
inserted. So two processes issue in parallel even on SQLite, and a crash leaves at most an unreferenced
blob (content-addressed, harmless), never a record without its PDF. The same request key twice
returns the same license; the same key for a different request is refused.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone

from ca.profiles import SubjectKind
from ca.subjects import IdentityProtector
from eauth.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    LicenseStatusConflict,
    NotFound,
    RequestKeyReused,
)
from keys.base import KeyStore
from licenses.catalog import LicenseType, expiry, license_digest, validate_fields
from licenses.identifiers import LicenseIdentifier
from licenses.records import (
    BlobStore,
    EventRecord,
    LicenseRecord,
    LicenseStore,
    LicenseTransaction,
    LicenseTypeRecord,
    RequestKey,
    VersionRecord,
)
from licenses.render import LicenseDocument, render_license
from licenses.token import DIGEST_PREFIX_LENGTH, QrClaims, QrTokenSigner, qr_url
from signing.pades import SealSpec, sign_pdf

FIELDS_SECRET = "license-fields"
#: Serial numbers are the type-and-issuer counter, zero-padded to this many digits.
SERIAL_DIGITS = 8
#: Serial numbers a process reserves at a time (one short transaction per block instead of per
#: license); a process that stops leaves the rest of its block unused: a gap, never a duplicate.
SERIAL_BLOCK = 16
#: Longest client request key.
MAX_REQUEST_KEY = 128

#: Status changes: action → (statuses it applies to, status it leads to).
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "suspend": (frozenset({"valid"}), "suspended"),
    "reinstate": (frozenset({"suspended"}), "valid"),
    "revoke": (frozenset({"valid", "suspended"}), "revoked"),
    "cancel": (frozenset({"valid", "suspended"}), "cancelled"),
    "expire": (frozenset({"valid", "suspended"}), "expired"),
}


@dataclass(frozen=True, slots=True)
class Issuer:
    """The issuing agency: its id, name (on the license) and credit code (in the identifier)."""

    agency_id: int
    name: str
    credit_code: str | None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changes a license: an agency (``agency_id``) through one of its clients, or the operator
    (``agency_id=None``); ``name`` goes into the event."""

    agency_id: int | None
    name: str


@dataclass(frozen=True, slots=True)
class IssuedLicense:
    """A license and the version just issued (or, found again by its request key, ``created`` False and
    its current version)."""

    license: LicenseRecord
    version: VersionRecord
    created: bool = True


def effective_status(license: LicenseRecord, today: date, *, version: VersionRecord | None = None) -> str:
    """What a relying party should be told: the stored status, ``expired`` once the validity date has
    passed (even before a sweep records it), ``superseded`` for a version that is no longer current."""
    if version is not None and version.version != license.version:
        return "superseded"
    if license.status == "valid" and license.valid_until is not None and license.valid_until < today:
        return "expired"
    return license.status


class FieldCipher:
    """License fields encrypted at rest (they carry ID numbers), bound to the license and version."""

    def __init__(self, keys: KeyStore) -> None:
        self._secret = keys.secret(FIELDS_SECRET)

    def encrypt(self, fields: Mapping[str, str], *, license_id: str, version: int) -> bytes:
        plain = json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        return self._secret.encrypt(plain, associated_data=f"{license_id}:{version}".encode())

    def decrypt(self, version: VersionRecord) -> dict[str, str]:
        aad = f"{version.license_id}:{version.version}".encode()
        return json.loads(self._secret.decrypt(version.fields_ciphertext, associated_data=aad))


class LicenseService:
    """Issues licenses and changes their status. Every dependency is handed in (storage, blobs, the
    agency's seal, the QR key), so the same service runs in the API, a worker process or the CLI."""

    def __init__(
        self,
        *,
        transaction: LicenseTransaction,
        blobs: BlobStore,
        seal_for: Callable[[int], SealSpec],
        seal_image_for: Callable[[int], bytes | None],
        qr: QrTokenSigner,
        keys: KeyStore,
        public_base_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.transaction = transaction
        self.blobs = blobs
        self.seal_for = seal_for
        self.seal_image_for = seal_image_for
        self.qr = qr
        self.identities = IdentityProtector(keys)
        self.cipher = FieldCipher(keys)
        self.public_base_url = public_base_url.rstrip("/")
        self.clock = clock
        self._lock = threading.Lock()
        self._serials: dict[tuple[str, str], range] = {}
        self._types: dict[str, tuple[int, LicenseType]] = {}

    # -- catalog -----------------------------------------------------------------------------------

    def define_type(self, license_type: LicenseType, *, agency_id: int) -> LicenseTypeRecord:
        """Add a license type to the catalog, owned by ``agency_id``; AlreadyExists if the code is taken."""
        record = LicenseTypeRecord(license_type.code, agency_id, license_type.to_json())
        with self.transaction() as store:
            store.add_license_type(record, name_zh=license_type.name_zh, name_en=license_type.name_en)
        return record

    def license_type(self, store: LicenseStore | None, code: str, *, agency_id: int | None) -> LicenseType:
        """The type ``code``; NotFound if unknown, Forbidden if ``agency_id`` (None: the operator) does
        not own it. ``store`` is read only for a type this process has not seen yet."""
        known = self._types.get(code)
        if known is None:
            record = store.license_type(code)
            if record is None:
                raise NotFound(f"no license type {code!r} in the catalog")
            # A type, once in the catalog, never changes (a new definition is a new code): kept per process.
            known = self._types.setdefault(code, (record.agency_id, LicenseType.from_json(record.spec)))
        owner, license_type = known
        if agency_id is not None and owner != agency_id:
            raise Forbidden(f"license type {code} belongs to another agency")
        return license_type

    def known_type(self, code: str) -> LicenseType | None:
        """The type ``code`` if this process has read it already (no store needed), else None."""
        known = self._types.get(code)
        return known[1] if known is not None else None

    def _next_serial(self, type_code: str, issuer_code: str) -> int:
        """A serial number never given out before, from this process's reserved block."""
        with self._lock:
            block = self._serials.get((type_code, issuer_code))
            if not block:
                with self.transaction() as store:
                    first = store.take_serials(type_code, issuer_code, SERIAL_BLOCK)
                block = range(first, first + SERIAL_BLOCK)
            self._serials[type_code, issuer_code] = block[1:]
            return block[0]

    # -- issuance ----------------------------------------------------------------------------------

    def issue(self, issuer: Issuer, *, type_code: str, fields: Mapping[str, object], actor: Actor,
              request_key: str | None = None) -> IssuedLicense:
        """Issue a license of ``type_code`` with ``fields`` to the holder they name (see module doc)."""
        if request_key is not None and not 1 <= len(request_key) <= MAX_REQUEST_KEY:
            raise InvalidInput(f"request key must be 1 to {MAX_REQUEST_KEY} characters", field="request_key")
        request_hash = _request_hash(type_code, fields)
        earlier = None
        if request_key is None and type_code in self._types:  # nothing to read: no transaction at all
            license_type = self.license_type(None, type_code, agency_id=issuer.agency_id)
        else:
            with self.transaction() as store:
                license_type = self.license_type(store, type_code, agency_id=issuer.agency_id)
                earlier = self._earlier(store, issuer.agency_id, request_key, request_hash) if request_key else None
        if earlier is not None:
            return earlier
        if issuer.credit_code is None:
            raise InvalidInput("the issuing agency has no unified social credit code: licenses name their issuer by it")
        values = validate_fields(license_type, fields)
        serial = self._next_serial(type_code, issuer.credit_code)
        identifier = LicenseIdentifier(type_code=type_code, issuer_code=issuer.credit_code,
                                       serial=f"{serial:0{SERIAL_DIGITS}d}", version=1)
        now = self.clock()
        license_id = uuid.uuid4().hex
        holder_kind, holder_index, holder_name = self._holder(license_type, values)
        version = self._make_version(license_type, issuer, license_id=license_id, identifier=identifier,
                                     values=values, now=now)
        license = LicenseRecord(
            id=license_id, type_code=type_code, agency_id=issuer.agency_id, issuer_code=issuer.credit_code,
            serial=identifier.serial, holder_kind=holder_kind, holder_index=holder_index, holder_name=holder_name,
            status="valid", status_reason=None, version=1, identifier=identifier.text,
            valid_until=version.valid_until, created_at=now, updated_at=now,
        )
        event = EventRecord(license_id, 1, "issue", actor.name, None, now)
        request = RequestKey(issuer.agency_id, request_key, request_hash) if request_key is not None else None
        try:
            with self.transaction() as store:
                store.add_license(license, version, event, request)
        except AlreadyExists:
            if request_key is None:
                raise
            with self.transaction() as store:  # the same request, made at the same time elsewhere
                earlier = self._earlier(store, issuer.agency_id, request_key, request_hash)
            if earlier is None:
                raise
            return earlier
        return IssuedLicense(license, version)

    def amend(self, license_id: str, issuer: Issuer, *, fields: Mapping[str, object], actor: Actor) -> IssuedLicense:
        """A new version of a valid or suspended license with new ``fields`` (same holder number), signed
        anew; the previous version is superseded."""
        with self.transaction() as store:
            license = self._owned(store, license_id, actor)
            license_type = self.license_type(store, license.type_code, agency_id=None)
        if license.status not in ("valid", "suspended"):
            raise LicenseStatusConflict(f"license {license.identifier} is {license.status}: it cannot be amended",
                                        license_status=license.status)
        values = validate_fields(license_type, fields)
        holder_kind, holder_index, holder_name = self._holder(license_type, values)
        if (holder_kind, holder_index) != (license.holder_kind, license.holder_index):
            raise InvalidInput("an amendment cannot change the holder's identity number: issue a new license",
                               field=license_type.holder_field)
        identifier = LicenseIdentifier.parse(license.identifier).next_version()
        now = self.clock()
        version = self._make_version(license_type, issuer, license_id=license.id, identifier=identifier,
                                     values=values, now=now)
        amended = replace(license, version=identifier.version, identifier=identifier.text,
                          valid_until=version.valid_until, holder_name=holder_name, updated_at=now)
        with self.transaction() as store:
            current = store.license(license.id, for_update=True)
            if current.version != license.version or current.status not in ("valid", "suspended"):
                raise LicenseStatusConflict(f"license {license.identifier} changed meanwhile; retry", license_status=current.status)
            store.add_version(amended, version, EventRecord(license.id, identifier.version, "amend", actor.name, None, now))
        return IssuedLicense(amended, version)

    def change_status(self, license_id: str, action: str, *, actor: Actor, reason: str | None = None) -> LicenseRecord:
        """Suspend, reinstate, revoke (with a reason), cancel or expire a license; LicenseStatusConflict
        when its status does not allow it (revoking a revoked license, say)."""
        if action not in TRANSITIONS:
            raise InvalidInput(f"unknown license action {action!r}; use one of {', '.join(TRANSITIONS)}")
        if action == "revoke" and not reason:
            raise InvalidInput("a revocation needs a reason", field="reason")
        if reason is not None and len(reason) > 200:
            raise InvalidInput("reason must be at most 200 characters", field="reason")
        allowed, target = TRANSITIONS[action]
        with self.transaction() as store:
            license = self._owned(store, license_id, actor, for_update=True)
            if license.status not in allowed:
                raise LicenseStatusConflict(
                    f"license {license.identifier} is {license.status}: it cannot be {_past(action)}",
                    license_status=license.status)
            now = self.clock()
            changed = replace(license, status=target, updated_at=now,
                              status_reason=reason if target != "valid" else None)
            store.set_status(changed, EventRecord(license.id, license.version, action, actor.name, reason, now))
        return changed

    def pdf(self, version: VersionRecord) -> bytes:
        """The signed PDF of ``version`` as issued."""
        return self.blobs.get(version.pdf_sha256)

    def holder_index(self, holder_kind: str, number: str) -> str:
        """The blind index licenses of the holder with identity number ``number`` are found by."""
        return self.identities.index(SubjectKind(holder_kind), number)

    # -- internals ---------------------------------------------------------------------------------

    def _owned(self, store: LicenseStore, license_id: str, actor: Actor, *, for_update: bool = False) -> LicenseRecord:
        license = store.license(license_id, for_update=for_update)
        if license is None or (actor.agency_id is not None and license.agency_id != actor.agency_id):
            raise NotFound(f"no license {license_id} of this agency")
        return license

    def _earlier(self, store: LicenseStore, agency_id: int, key: str, request_hash: str) -> IssuedLicense | None:
        found = store.request(agency_id, key)
        if found is None:
            return None
        if found[0] != request_hash:
            raise RequestKeyReused(f"request key {key!r} was used for a different license request", field="request_key")
        license = store.license(found[1])
        return IssuedLicense(license, store.version(license.id, license.version), created=False)

    def _holder(self, license_type: LicenseType, values: Mapping[str, str]) -> tuple[str, str, str]:
        kind = license_type.holder_kind.value
        return kind, self.holder_index(kind, values[license_type.holder_field]), values[license_type.holder_name_field]

    def _make_version(self, license_type: LicenseType, issuer: Issuer, *, license_id: str,
                      identifier: LicenseIdentifier, values: Mapping[str, str], now: datetime) -> VersionRecord:
        """Render, sign and store the PDF of one version; the record to insert."""
        issued_on = now.date()
        valid_until = expiry(license_type, values, issued_on)
        digest = license_digest(identifier=identifier.text, type_code=license_type.code, fields=values)
        token = self.qr.sign(QrClaims(identifier=identifier, issued_on=issued_on, expires_on=valid_until,
                                      digest_prefix=digest[:DIGEST_PREFIX_LENGTH]))
        labels = {spec.name: spec.label_zh for spec in license_type.fields}
        document = LicenseDocument(
            title_zh=license_type.name_zh, title_en=license_type.name_en, identifier=identifier.text,
            holder_name=values[license_type.holder_name_field],
            fields=tuple((labels[name], value) for name, value in values.items() if value),
            issuer_name=issuer.name, issued_on=issued_on, valid_until=valid_until,
            qr_url=qr_url(self.public_base_url, token), seal_image=self.seal_image_for(issuer.agency_id),
            version=identifier.version,
        )
        seal = self.seal_for(issuer.agency_id)
        signed = sign_pdf(render_license(document), seal=seal, level="B-LT", certify="no-changes")
        key = self.blobs.put(signed)
        return VersionRecord(
            license_id=license_id, version=identifier.version, identifier=identifier.text,
            fields_ciphertext=self.cipher.encrypt(values, license_id=license_id, version=identifier.version),
            digest=digest.hex(), issued_on=issued_on, valid_until=valid_until, pdf_sha256=key,
            pdf_size=len(signed), seal_serial=format(seal.certificate.serial_number, "x"), qr_token=token,
            created_at=now,
        )


def _request_hash(type_code: str, fields: Mapping[str, object]) -> str:
    canonical = json.dumps({"type": type_code, "fields": fields}, ensure_ascii=False, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()  # validation refuses them later


def _past(action: str) -> str:
    return {"suspend": "suspended", "reinstate": "reinstated", "revoke": "revoked", "cancel": "cancelled",
            "expire": "expired"}[action]
