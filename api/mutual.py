"""Mutual recognition (互认) wiring: importing another platform's trust bundle (``verify.bundle``,
version 2, signed by its root), listing and removing imports (``store.trust_store``), and what
verification takes from them: their roots as trust anchors named after the import, their CA
certificates as intermediates, their QR and login token keys, and the status of the certificates they
issued (asked of their OCSP responder, ``verify.foreign``).

The database holds the imports; each process keeps a parsed copy for
``trusted_platforms_refresh_seconds`` (10 s by default) so that an import or a removal made by any
process (the CLI, another API node) takes effect everywhere within that time, and at once in the
process that made it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from api.platform import Platform
from eauth.errors import InvalidInput, InvalidTrustBundle, TrustImportRefused
from store.ca_store import SqlCaStore
from store.trust_store import (
    TrustedPlatformRecord,
    add_trusted_platform,
    remove_trusted_platform,
    trusted_platforms,
)
from verify.bundle import VERSION, TrustBundle
from verify.foreign import MAX_RESPONSE_BYTES, ocsp_request, ocsp_state
from verify.login import LoginKey
from verify.pdf import CertificateState, TrustAnchor

log = logging.getLogger("eauth.api")

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class ImportedPlatform:
    """A trusted platform: the operator's name for it (what reports say), its id (SHA-256 of its
    root), base URL, when it was imported, and its bundle."""

    name: str
    platform_id: str
    base_url: str | None
    imported_at: datetime
    bundle: TrustBundle


@dataclass(frozen=True)
class ImportedTrust:
    """What the imports give verification, at one moment."""

    platforms: tuple[ImportedPlatform, ...] = ()
    roots: tuple[TrustAnchor, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    #: QR token key by kid → (key, platform).
    qr_keys: dict[str, tuple[ec.EllipticCurvePublicKey, ImportedPlatform]] = field(default_factory=dict)
    #: Login token keys by kid, each with its platform's issuer (base URL) and name.
    login_keys: dict[str, LoginKey] = field(default_factory=dict)
    #: Subject (DER) of an imported CA certificate → (certificate, platform).
    issuers: dict[bytes, tuple[x509.Certificate, ImportedPlatform]] = field(default_factory=dict)

    @classmethod
    def of(cls, platforms: tuple[ImportedPlatform, ...]) -> ImportedTrust:
        roots, intermediates, qr_keys, login_keys, issuers = [], [], {}, {}, {}
        for p in platforms:
            for entry in p.bundle.certificates:
                if entry.role == "root":
                    roots.append(TrustAnchor(p.name, entry.certificate))
                else:
                    intermediates.append(entry.certificate)
                if entry.role in ("root", "issuing"):
                    issuers[entry.certificate.subject.public_bytes()] = (entry.certificate, p)
            for kid, key in p.bundle.qr_public_keys:
                qr_keys.setdefault(kid, (key, p))
            if p.base_url:  # a login token's iss is its platform's base URL
                for kid, key in p.bundle.login_public_keys:
                    login_keys.setdefault(kid, LoginKey(kid, key, p.base_url, p.name))
        return cls(platforms=platforms, roots=tuple(roots), intermediates=tuple(intermediates), qr_keys=qr_keys,
                   login_keys=login_keys, issuers=issuers)

    def platform(self, name: str | None) -> ImportedPlatform | None:
        """The imported platform of that (anchor) name."""
        return next((p for p in self.platforms if p.name == name), None)


class TrustedPlatforms:
    """This process's copy of the imports, read again after ``trusted_platforms_refresh_seconds``."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._lock = threading.Lock()
        self._expires = float("-inf")
        self._current = ImportedTrust()
        self._parsed: dict[tuple[int, str], ImportedPlatform] = {}

    def current(self) -> ImportedTrust:
        if time.monotonic() < self._expires:
            return self._current
        with self._lock:
            if time.monotonic() >= self._expires:
                with self.platform.db.transaction() as connection:
                    records = trusted_platforms(connection)
                parsed = (self._parse(r) for r in records)
                self._current = ImportedTrust.of(tuple(p for p in parsed if p is not None))
                self._expires = time.monotonic() + self.platform.settings.trusted_platforms_refresh_seconds
        return self._current

    def _parse(self, record: TrustedPlatformRecord) -> ImportedPlatform | None:
        key = (record.id, record.platform_id)
        found = self._parsed.get(key)
        if found is None:
            try:
                bundle = TrustBundle.from_json(record.bundle)
            except InvalidTrustBundle as exc:  # validated on import: only a hand-edited row gets here
                log.error("trusted platform %r: stored bundle refused (%s); not trusted", record.name, exc.detail)
                return None
            found = self._parsed[key] = ImportedPlatform(record.name, record.platform_id, record.base_url,
                                                         record.imported_at, bundle)
        return found

    def clear(self) -> None:
        """Read the imports again on next use (after this process changed them)."""
        with self._lock:
            self._expires = float("-inf")


def imported(platform: Platform) -> ImportedTrust:
    """The imports as this process knows them now (at most the refresh interval old)."""
    return platform.kept(TrustedPlatforms).current()


# -- operator actions --------------------------------------------------------------------------------


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"the platform name must be 1 to {MAX_NAME} printable characters", field="name")
    return name


def _fingerprint(value: str) -> str:
    text = value.strip().lower().replace(":", "").replace(" ", "")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInput("the root fingerprint must be the 64 hex digits of a SHA-256 (colons allowed)",
                           field="root_sha256")
    return text


def import_bundle(platform: Platform, data: bytes | str, *, name: str, root_sha256: str, actor: str,
                  now: datetime | None = None) -> ImportedPlatform:
    """Trust the platform whose bundle ``data`` is, under ``name``, once the operator confirmed its root
    fingerprint (``root_sha256``, obtained out of band). Refused: not a signed version 2 bundle
    (InvalidTrustBundle), another fingerprint, our own root, a root out of its validity
    (TrustImportRefused), a name or root already trusted (PlatformAlreadyTrusted)."""
    name, expected = _name(name), _fingerprint(root_sha256)
    bundle = TrustBundle.from_json(data)
    if bundle.version < VERSION:
        raise InvalidTrustBundle(f"a version {bundle.version} bundle is not signed: import needs version {VERSION} "
                                 "(`eauth trust export` of a current platform)", path="version")
    if bundle.platform_id != expected:
        raise TrustImportRefused(f"the bundle's root has SHA-256 {bundle.platform_id}, not the {expected} you "
                                 "confirmed: do not import it", reason="fingerprint_mismatch")
    moment = now or datetime.now(timezone.utc)
    with platform.db.session() as session:
        ours = SqlCaStore(session).authority("root")
    our_id = hashlib.sha256(ours.certificate.public_bytes(Encoding.DER)).hexdigest()
    roots = [c.certificate for c in bundle.certificates if c.role == "root"]
    if any(hashlib.sha256(r.public_bytes(Encoding.DER)).hexdigest() == our_id for r in roots):
        raise TrustImportRefused("this is this platform's own trust bundle (its root is ours)", reason="own_platform")
    if name == platform.settings.platform_name:
        raise TrustImportRefused(f"{name!r} is this platform's own name: choose another", reason="own_platform")
    for root in roots:
        if not root.not_valid_before_utc <= moment <= root.not_valid_after_utc:
            raise TrustImportRefused(f"the root {root.subject.rfc4514_string()} is valid from "
                                     f"{root.not_valid_before_utc.isoformat()} to {root.not_valid_after_utc.isoformat()}, "
                                     "not now", reason="root_expired")
    with platform.db.transaction() as connection:
        record = add_trusted_platform(connection, name=name, platform_id=bundle.platform_id,
                                      base_url=bundle.base_url, bundle=bundle.to_json(), imported_at=moment,
                                      actor=actor)
    platform.kept(TrustedPlatforms).clear()
    return ImportedPlatform(record.name, record.platform_id, record.base_url, record.imported_at, bundle)


def remove_platform(platform: Platform, name: str, *, actor: str) -> TrustedPlatformRecord:
    """Stop trusting the platform imported as ``name``; TrustedPlatformNotFound if there is none."""
    with platform.db.transaction() as connection:
        record = remove_trusted_platform(connection, name, actor=actor)
    platform.kept(TrustedPlatforms).clear()
    return record


def list_platforms(platform: Platform) -> list[ImportedPlatform]:
    """Every import, read now (not this process's copy)."""
    platform.kept(TrustedPlatforms).clear()
    return list(imported(platform).platforms)


# -- certificate status ------------------------------------------------------------------------------


def foreign_status(platform: Platform, trust: ImportedTrust, issuer: bytes, serial: int) -> CertificateState | None:
    """The status of certificate ``serial`` of ``issuer`` (Name DER) if an imported platform's CA
    issued it, from that platform's OCSP responder; None if no imported CA has that name."""
    found = trust.issuers.get(issuer)
    if found is None:
        return None
    ca, owner = found
    source = f"the OCSP responder of {owner.name}"
    if not owner.base_url:
        return CertificateState("unknown", source=f"{owner.name} publishes no base URL: its status is not checkable here")
    url = f"{owner.base_url.rstrip('/')}/ocsp"
    request = urllib.request.Request(url, data=ocsp_request(ca, serial), method="POST",
                                     headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(request, timeout=platform.settings.foreign_ocsp_timeout_seconds) as answer:
            body = answer.read(MAX_RESPONSE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return CertificateState("unknown", source=f"{source} ({url}) did not answer: {getattr(exc, 'reason', exc)}")
    return ocsp_state(body, issuer=ca, serial=serial, now=datetime.now(timezone.utc), source=source)


__all__ = ["ImportedPlatform", "ImportedTrust", "TrustedPlatforms", "foreign_status", "import_bundle",
           "imported", "list_platforms", "remove_platform"]
