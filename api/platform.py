"""Wiring: settings → database, key store, CA, token service. Shared by the HTTP app and the CLI."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from api.tokens import TOKEN_KEY_LABEL, TokenService
from ca.authority import CaUrls, CertificateAuthority, InitResult, initialize
from ca.lifecycle import CertificateLifecycle
from eauth.errors import NotInitialized
from eauth.settings import Settings
from keys.base import KeyAlgorithm, KeyStore
from keys.filestore import FileKeyStore
from signing.tsa import TimeStampAuthority, TsaConfig
from store.audit import CHECKPOINT_KEY_LABEL
from store.ca_store import SqlCaStore
from store.db import Database


T = TypeVar("T")

#: The key that signs the QR tokens printed on licenses (published in the trust bundle).
QR_KEY_LABEL = "qr-token"


def open_key_store(settings: Settings, *, create: bool = False) -> KeyStore:
    """The configured key store, unlocked; KeyStoreLocked/KeyStoreError/NotInitialized if it can't be."""
    if settings.key_backend == "pkcs11":
        from keys.pkcs11store import Pkcs11KeyStore

        if settings.pkcs11_module is None:
            raise NotInitialized("EAUTH_PKCS11_MODULE must name the PKCS#11 library for the pkcs11 key backend")
        return Pkcs11KeyStore(settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_user_pin())
    return FileKeyStore(Path(settings.data_dir) / "keys", settings.key_store_passphrase(), create=create)


@dataclass
class Platform:
    """Everything a request or a command needs, opened once per process."""

    settings: Settings
    db: Database
    keys: KeyStore
    ca: CertificateAuthority
    tokens: TokenService
    lifecycle: CertificateLifecycle
    _tsa: TimeStampAuthority | None = field(default=None, init=False, repr=False)
    _kept: dict = field(default_factory=dict, init=False, repr=False)
    _kept_lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)  # factories nest

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """Open an initialized platform; refuses clearly if keys or schema are missing or locked."""
        keys = open_key_store(settings)
        db = Database(settings.resolved_database_url)
        try:
            db.require_current()
        except Exception:
            db.dispose()
            raise
        return cls._assemble(settings, db, keys)

    @classmethod
    def _assemble(cls, settings: Settings, db: Database, keys: KeyStore) -> Platform:
        ca = CertificateAuthority(
            keys, urls=CaUrls(settings.public_base_url), key_algorithm=KeyAlgorithm.parse(settings.key_algorithm)
        )
        tokens = TokenService(keys.signer(TOKEN_KEY_LABEL), issuer=settings.public_base_url,
                              ttl_seconds=settings.access_token_ttl_seconds)
        return cls(settings, db, keys, ca, tokens, lifecycle=CertificateLifecycle())

    def kept(self, factory: Callable[[Platform], T]) -> T:
        """``factory(self)``, made on first use and kept for this platform (this process): for wiring
        that holds no state, only what is costly to prepare (the sealer, the license service)."""
        found = self._kept.get(factory)
        if found is None:
            with self._kept_lock:
                found = self._kept.get(factory)
                if found is None:
                    found = self._kept[factory] = factory(self)
        return found

    def timestamp_authority(self) -> TimeStampAuthority:
        """The RFC 3161 TSA: the ``tsa`` certificate (sent with the seal CA's) and its key. Made on first
        use and kept: both are fixed once ``eauth init`` has made them."""
        if self._tsa is None:
            with self.db.session() as session:
                store = SqlCaStore(session)
                tsa, issuer = store.authority("tsa"), None
                if tsa is not None and tsa.parent:
                    issuer = store.authority(tsa.parent)
            if tsa is None:
                raise NotInitialized("the time-stamping authority does not exist (run `eauth init`)")
            config = TsaConfig(policy_oid=self.settings.tsa_policy_oid,
                               accuracy_seconds=self.settings.tsa_accuracy_seconds)
            chain = (issuer.certificate,) if issuer is not None and issuer.role != "root" else ()
            self._tsa = TimeStampAuthority(self.keys.signer(tsa.key_label), tsa.certificate, chain=chain, config=config)
        return self._tsa

    def close(self) -> None:
        """Close what was kept (some keep driver connections of their own), then the engine."""
        with self._kept_lock:
            kept, self._kept = list(self._kept.values()), {}
        for value in kept:
            if callable(getattr(value, "close", None)):
                value.close()
        self.db.dispose()


def initialize_platform(settings: Settings) -> tuple[InitResult, bool]:
    """Create the data dir, schema, keys and CA hierarchy where missing. Returns what was created and
    whether the schema changed; a second run creates nothing."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    keys = open_key_store(settings, create=True)
    db = Database(settings.resolved_database_url)
    try:
        migrated = db.migrate()
        with db.session() as session:
            result = initialize(
                keys,
                SqlCaStore(session),
                urls=CaUrls(settings.public_base_url),
                organization=settings.platform_name,
                algorithm=KeyAlgorithm.parse(settings.key_algorithm),
            )
        # ES256 keys: access tokens, license QR tokens, audit checkpoints
        for label in (TOKEN_KEY_LABEL, QR_KEY_LABEL, CHECKPOINT_KEY_LABEL):
            if not keys.has_key(label):
                keys.generate(label, KeyAlgorithm.EC_P256)
                result = InitResult(result.created + (label,), result.existing)
            else:
                result = InitResult(result.created, result.existing + (label,))
        from api.login import ensure_login_key  # api.login imports this module

        made = ensure_login_key(keys, db, ttl_seconds=settings.login_token_ttl_seconds)
        result = InitResult(result.created + (made,), result.existing) if made else \
            InitResult(result.created, result.existing + ("login-token keys",))
    finally:
        db.dispose()
    return result, migrated
