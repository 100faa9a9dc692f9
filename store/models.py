"""SQLAlchemy models: the platform's persistent state. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC on the way out (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Agency(Base):
    """A government body that registers subjects (acts as RA) and, later, issues licenses."""

    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: The agency's seal image (PNG) in the blob store, shown on its licenses and visible seals.
    seal_image_sha256: Mapped[str | None] = mapped_column(String(64))


class ApiClient(Base):
    """An OAuth2 client (client-credentials grant) belonging to an agency."""

    __tablename__ = "api_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, as in OAuth2
    name: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Authority(Base):
    """One of the platform's own certificates: root, issuing CAs, OCSP signer, TSA."""

    __tablename__ = "authorities"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # root | issuing | ocsp | tsa
    parent: Mapped[str | None] = mapped_column(ForeignKey("authorities.name"))
    key_label: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), server_default="valid")  # valid | revoked
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    revocation_entry: Mapped[bytes | None] = mapped_column(LargeBinary)  # DER revokedCertificates entry


class Subject(Base):
    """A person, enterprise or agency known to the platform.

    The identity number is never stored in clear: ``id_number_ciphertext`` is AES-GCM under a platform
    secret and ``id_number_index`` a keyed hash (blind index) for look-up by number. ``pseudonym`` is
    the keyed identifier that certificates carry instead of the number.
    """

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("kind", "id_number_index", name="uq_subjects_kind_index"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # person | enterprise | agency
    name: Mapped[str] = mapped_column(String(200))
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_index: Mapped[str] = mapped_column(String(64))
    id_number_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    registered_by: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Certificate(Base):
    """An end-entity certificate issued by one of the issuing CAs, with its current status."""

    __tablename__ = "certificates"
    __table_args__ = (
        Index("ix_certificates_subject", "subject_id", "not_before"),
        Index("ix_certificates_issuer_status", "issuer", "status"),
    )

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # lower-case hex
    issuer: Mapped[str] = mapped_column(ForeignKey("authorities.name"))
    profile: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    subject_dn: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime())
    not_after: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16))  # valid | suspended | revoked
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    invalidity_date: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The DER ``revokedCertificates`` entry for this certificate while it is revoked or on hold, encoded
    #: once at the status change so that a CRL is a concatenation, never a re-encoding of every entry.
    revocation_entry: Mapped[bytes | None] = mapped_column(LargeBinary)
    replaces: Mapped[str | None] = mapped_column(ForeignKey("certificates.serial"))  # renewal / re-key
    key_label: Mapped[str | None] = mapped_column(String(64))  # set when the platform keeps the key
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    requested_by: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Crl(Base):
    """The latest CRL of each CA; ``number`` only ever increases (RFC 5280 cRLNumber)."""

    __tablename__ = "crls"

    issuer: Mapped[str] = mapped_column(ForeignKey("authorities.name"), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger)
    this_update: Mapped[datetime] = mapped_column(UtcDateTime())
    next_update: Mapped[datetime] = mapped_column(UtcDateTime())
    entries: Mapped[int] = mapped_column(BigInteger)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class OcspResponse(Base):
    """A signed OCSP response without nonce, reusable by every process until shortly before its
    nextUpdate; deleted in the same transaction as any status change of its certificate."""

    __tablename__ = "ocsp_responses"

    issuer: Mapped[str] = mapped_column(ForeignKey("authorities.name"), primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), primary_key=True)
    this_update: Mapped[datetime] = mapped_column(UtcDateTime())
    next_update: Mapped[datetime] = mapped_column(UtcDateTime())
    der: Mapped[bytes] = mapped_column(LargeBinary)


#: An auto-increment key that is SQLite's rowid there (SQLite autoincrements INTEGER PRIMARY KEY only).
AutoId = BigInteger().with_variant(Integer, "sqlite")


class LicenseType(Base):
    """A kind of electronic license in the catalog, owned by one agency; ``spec`` is its whole
    definition (fields, validity rule, layout) as ``licenses.catalog.LicenseType.to_json``."""

    __tablename__ = "license_types"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(200))
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class License(Base):
    """One electronic license across its versions, with its current status and version.

    The holder's identity number is kept only as a blind index (for the wallet); the fields, which
    carry it, are stored encrypted per version."""

    __tablename__ = "licenses"
    __table_args__ = (
        UniqueConstraint("type_code", "issuer_code", "serial", name="uq_licenses_type_issuer_serial"),
        Index("ix_licenses_holder", "holder_kind", "holder_index"),
        Index("ix_licenses_agency_type", "agency_id", "type_code"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type_code: Mapped[str] = mapped_column(ForeignKey("license_types.code"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    issuer_code: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str] = mapped_column(String(40))
    holder_kind: Mapped[str] = mapped_column(String(16))  # person | enterprise
    holder_index: Mapped[str] = mapped_column(String(64))
    holder_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # licenses.records.STATUSES
    status_reason: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    identifier: Mapped[str] = mapped_column(String(160), unique=True)  # of the current version
    valid_until: Mapped[date | None] = mapped_column(Date)  # of the current version
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LicenseVersion(Base):
    """One issued version of a license: its data (encrypted), the signed PDF (in the blob store, by
    SHA-256) and its QR token. An amendment adds a version and supersedes the previous one."""

    __tablename__ = "license_versions"

    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(160), unique=True)
    fields_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))  # licenses.catalog.license_digest, hex
    issued_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    pdf_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    pdf_size: Mapped[int] = mapped_column(Integer)
    seal_serial: Mapped[str] = mapped_column(ForeignKey("certificates.serial"))
    qr_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LicenseEvent(Base):
    """Every change of a license (issue, amend, suspend, reinstate, revoke, cancel), who and when."""

    __tablename__ = "license_events"
    __table_args__ = (Index("ix_license_events_license", "license_id", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class LicenseRequest(Base):
    """An agency's idempotency key: the same key again returns the license it made, a different
    request under the same key is refused."""

    __tablename__ = "license_requests"

    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    request_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LicenseSerial(Base):
    """The next serial number of each license type at each issuer; taken in short transactions of
    their own, so a failed issuance leaves a gap, never a duplicate."""

    __tablename__ = "license_serials"

    type_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    issuer_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class ImportJob(Base):
    """A bulk conversion of paper licenses (CSV/JSONL): its progress and outcome."""

    __tablename__ = "import_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    type_code: Mapped[str] = mapped_column(ForeignKey("license_types.code"))
    source: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    rows: Mapped[int] = mapped_column(Integer, default=0)
    issued: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # done by an earlier run
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ImportRejection(Base):
    """A row of an import that was not issued, and why."""

    __tablename__ = "import_rejections"

    job_id: Mapped[str] = mapped_column(ForeignKey("import_jobs.id"), primary_key=True)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)


class Verification(Base):
    """A verification by a relying party through the API (the public QR page is not recorded): who
    (the API client and its agency), what (``kind`` pdf | qr | certificate, and ``subject``: the
    license identifier, the certificate serial, or for a PDF that is no license of ours its SHA-256),
    the outcome (``result``: the indication, or the QR status) and when. For the statistics and the
    trace; rows are only ever added."""

    __tablename__ = "verifications"
    __table_args__ = (
        Index("ix_verifications_agency_at", "agency_id", "at"),
        Index("ix_verifications_subject", "kind", "subject"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    client_id: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    kind: Mapped[str] = mapped_column(String(16))  # store.verification_store.KINDS
    subject: Mapped[str | None] = mapped_column(String(200))
    file_sha256: Mapped[str | None] = mapped_column(String(64))  # pdf: the file verified
    result: Mapped[str] = mapped_column(String(64))


# -- certificate login (single sign-on) --------------------------------------------------------------


class LoginChallenge(Base):
    """A nonce a holder signs to log in to ``audience``: single use (``used_at`` set by the one
    UPDATE that consumes it), valid until ``expires_at``. In the database so any API process can
    consume a challenge another one gave out."""

    __tablename__ = "login_challenges"
    __table_args__ = (Index("ix_login_challenges_expires", "expires_at"),)

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    audience: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LoginKey(Base):
    """A key (ES256, in the key store under ``label``) that signs login tokens. The newest unretired
    one signs; a retired one stays published until ``not_after``: when the last token it signed has
    expired."""

    __tablename__ = "login_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    not_after: Mapped[datetime | None] = mapped_column(UtcDateTime())


# -- audit trail (hash chain with signed checkpoints) ------------------------------------------------


class AuditEntry(Base):
    """One entry of the tamper-evident audit log (``store.audit``): who did what to which subject,
    chained to the entry before by ``prev_hash``; ``hash`` is SHA-256 over all the other columns.
    Rows are only ever added, in the transaction of the change they record."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_subject", "subject"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The one row (``id`` 1) holding the chain's last ``seq`` and ``hash``: every append updates it
    first, so its row lock (PostgreSQL) or the write lock (SQLite) puts concurrent appends in a line."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement that the chain had entry ``seq`` with ``hash`` at time ``at``: ES256 by the
    platform's audit-checkpoint key (``key_id``: its JWK thumbprint), over ``store.audit`` encoding."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


# -- authorized use (授权用证): grants of a license to an agency --------------------------------------


class LicenseGrant(Base):
    """A holder's grant of one license to one agency for a purpose until ``valid_until``
    (``licenses.grants``). The holder is kept as the license's blind index, never the number."""

    __tablename__ = "license_grants"
    __table_args__ = (
        Index("ix_license_grants_holder", "holder_kind", "holder_index"),
        Index("ix_license_grants_agency", "agency_id", "valid_until"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"))
    holder_kind: Mapped[str] = mapped_column(String(16))
    holder_index: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    purpose: Mapped[str] = mapped_column(String(200))
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LicenseGrantAccess(Base):
    """One fetch by an agency client under a grant: the purpose it stated, what (license | pdf), when.
    Rows are only ever added, in the transaction of the fetch, with its audit entry."""

    __tablename__ = "license_grant_accesses"
    __table_args__ = (Index("ix_license_grant_accesses_grant", "grant_id", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("license_grants.id"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    client_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(200))
    what: Mapped[str] = mapped_column(String(16))  # licenses.grants.WHATS
    at: Mapped[datetime] = mapped_column(UtcDateTime())


# -- mutual recognition (互认): other platforms' trust bundles, imported by the operator ---------------


class TrustedPlatform(Base):
    """Another platform whose trust bundle (``verify.bundle``, as imported, signed) this one trusts:
    its roots anchor certificate and PDF chains, its QR and login keys verify its tokens."""

    __tablename__ = "trusted_platforms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    platform_id: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of its root certificate
    base_url: Mapped[str | None] = mapped_column(String(300))
    bundle: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RateLimitWindow(Base):
    """Requests admitted per client in one fixed window, shared by every process (``store.rate_limits``)."""

    __tablename__ = "rate_limit_windows"

    client: Mapped[str] = mapped_column(String(120), primary_key=True)  # "client:<id>" or "address:<ip>"
    window: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # window start, seconds since the epoch
    admitted: Mapped[int] = mapped_column(Integer)
