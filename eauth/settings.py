"""All configuration, from ``EAUTH_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eauth.errors import KeyStoreLocked
from eauth.oids import TSA_POLICY_V1
from eauth.pdf_limits import DEFAULT_PDF_LIMITS, PdfLimits


class Settings(BaseSettings):
    """Platform settings. Every field is ``EAUTH_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EAUTH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Where the SQLite file, key files and documents live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in the data dir. PostgreSQL: postgresql+psycopg://..."
    )
    key_backend: Literal["file", "pkcs11"] = Field("file", description="Where private keys live.")
    key_passphrase: SecretStr | None = Field(None, description="Passphrase of the encrypted key files.")
    key_passphrase_file: Path | None = Field(None, description="File holding the key-file passphrase.")
    pkcs11_module: Path | None = Field(None, description="PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so.")
    pkcs11_token: str = Field("eauth", description="Label of the PKCS#11 token holding the platform keys.")
    pkcs11_pin: SecretStr | None = Field(None, description="User PIN of the token.")
    pkcs11_pin_file: Path | None = Field(None, description="File holding the token's user PIN.")
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL put into certificates (CRL, OCSP) and QR codes."
    )
    key_algorithm: Literal["ec-p256", "rsa-2048", "rsa-3072"] = Field(
        "ec-p256", description="Algorithm of the keys `eauth init` creates."
    )
    platform_name: str = Field("eauth demo platform", description="Organization name in the CA certificates.")
    trusted_platforms_refresh_seconds: float = Field(
        10, ge=0, le=3600, description="How long a process reuses its copy of the imported trust bundles "
        "(mutual recognition) before reading them again: an import or removal takes effect in every process "
        "within this; 0: read them for every verification.",
    )
    foreign_ocsp_timeout_seconds: float = Field(
        3, gt=0, le=30, description="How long to wait for an imported platform's OCSP responder when checking "
        "the status of a certificate it issued.",
    )
    access_token_ttl_seconds: int = Field(300, ge=30, le=3600, description="Lifetime of agency access tokens.")
    login_token_ttl_seconds: int = Field(
        600, ge=30, le=3600, description="Lifetime of holder login tokens (certificate login, single sign-on)."
    )
    login_challenge_ttl_seconds: int = Field(
        120, ge=10, le=600, description="How long a login challenge (nonce) may be answered."
    )
    max_request_bytes: int = Field(1 << 20, description="Largest request body accepted by the JSON/CSR endpoints.")
    max_document_bytes: int = Field(
        20 << 20, ge=1024, description="Largest request body of POST /api/v1/documents/sign (the PDF, the seal "
        "image and the multipart framing); every other route keeps max_request_bytes.",
    )
    rate_limit_per_client_per_minute: int = Field(
        120_000, ge=0, description="Requests a minute admitted per agency API client (its OAuth client id), "
        "across every process and node; 0: not limited.",
    )
    rate_limit_per_address_per_minute: int = Field(
        60_000, ge=0, description="Requests a minute admitted per remote address for callers without an agency "
        "or a login token (public endpoints, the token and login endpoints), across every process and node; "
        "0: not limited.",
    )
    rate_limit_per_holder_per_minute: int = Field(
        6_000, ge=0, description="Requests a minute admitted per logged-in holder (the subject of a login "
        "token), across every process and node; 0: not limited.",
    )
    rate_limit_revocation_per_address_per_minute: int = Field(
        0, ge=0, description="Requests a minute admitted per remote address on the revocation endpoints (OCSP, "
        "CRL, CA certificates), across every process and node; 0 (default): not limited, as relying parties "
        "behind one NAT address poll them and their answers are cached (docs/limits.md).",
    )
    max_pdf_pages: int = Field(
        DEFAULT_PDF_LIMITS.max_pages, ge=1, description="Most pages a PDF may have to be verified or signed "
        "(checked before the heavy work); more: 400 pdf_too_complex.",
    )
    max_pdf_objects: int = Field(
        DEFAULT_PDF_LIMITS.max_objects, ge=10, description="Most objects (cross-reference entries, every "
        "revision) a PDF may have to be verified or signed; more: 400 pdf_too_complex.",
    )
    signing_processes: int = Field(
        0, ge=0, description="Worker processes of each API process that sign PDFs (POST /api/v1/documents/sign); "
        "0: one per CPU.",
    )
    crl_validity_hours: int = Field(
        24, ge=1, le=24 * 31, description="How long each CRL is valid: its nextUpdate is thisUpdate plus this."
    )
    crl_refresh_margin_minutes: int = Field(
        720, ge=1, description="A new CRL is made once the current one is this close to its nextUpdate "
        "(so every validity − margin: 12 h by default); HTTP caches keep a CRL until then."
    )
    crl_refresh_interval_seconds: int = Field(
        300, ge=0, description="How often each API process checks for CRLs due for refresh; 0: never (use cron)."
    )
    audit_checkpoint_interval_seconds: int = Field(
        600, ge=0, description="How often each API process signs a checkpoint of the audit chain; 0: never "
        "(use `eauth audit checkpoint` from cron)."
    )
    tsa_policy_oid: str = Field(
        TSA_POLICY_V1, pattern=r"^[0-2](\.(0|[1-9][0-9]*))+$",
        description="Policy OID of the time-stamping authority, written into every token (see eauth.oids).",
    )
    tsa_accuracy_seconds: int = Field(1, ge=1, le=60, description="Accuracy of the TSA's genTime, in seconds.")
    ocsp_validity_minutes: int = Field(
        60, ge=2, le=7 * 24 * 60,
        description="How long each OCSP response is valid: its nextUpdate is thisUpdate plus this. Relying "
        "parties and HTTP caches may keep a response that long, so it bounds how late they see a status change.",
    )
    ocsp_reuse_margin_minutes: int = Field(
        10, ge=1, description="A stored response to a request without nonce is reused until it is this close "
        "to its nextUpdate, then a new one is signed.",
    )

    @model_validator(mode="after")
    def _crl_margin_within_validity(self) -> Settings:
        if self.crl_refresh_margin_minutes >= self.crl_validity_hours * 60:
            raise ValueError("EAUTH_CRL_REFRESH_MARGIN_MINUTES must be shorter than EAUTH_CRL_VALIDITY_HOURS")
        return self

    @model_validator(mode="after")
    def _ocsp_margin_within_validity(self) -> Settings:
        if self.ocsp_reuse_margin_minutes >= self.ocsp_validity_minutes:
            raise ValueError("EAUTH_OCSP_REUSE_MARGIN_MINUTES must be shorter than EAUTH_OCSP_VALIDITY_MINUTES")
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'eauth.db').resolve()}"

    @property
    def pdf_limits(self) -> PdfLimits:
        """The page and object limits on PDFs verified or signed (max_pdf_pages, max_pdf_objects)."""
        return PdfLimits(max_pages=self.max_pdf_pages, max_objects=self.max_pdf_objects)

    def secret(self, value: SecretStr | None, file: Path | None, what: str) -> str:
        """A secret from its variable or its file; refuses clearly when neither is set or readable."""
        if value is not None and value.get_secret_value():
            return value.get_secret_value()
        if file is not None:
            try:
                text = file.read_text().strip()
            except OSError as exc:
                raise KeyStoreLocked(f"cannot read the {what} file {file}: {exc.strerror}") from None
            if text:
                return text
            raise KeyStoreLocked(f"the {what} file {file} is empty")
        env = {"key passphrase": "EAUTH_KEY_PASSPHRASE", "token PIN": "EAUTH_PKCS11_PIN"}[what]
        raise KeyStoreLocked(f"no {what}: set {env} or {env}_FILE")

    def key_store_passphrase(self) -> str:
        return self.secret(self.key_passphrase, self.key_passphrase_file, "key passphrase")

    def pkcs11_user_pin(self) -> str:
        return self.secret(self.pkcs11_pin, self.pkcs11_pin_file, "token PIN")
