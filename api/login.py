"""Certificate login wiring: challenges, the checks of ``verify.login``, login tokens signed by the
current login key, key rotation and the published keys. See docs/login.md.

Every piece of state is in the database (challenges, which key signs, which keys are published), so
any number of API processes share it; a process keeps only the immutable signers it has opened.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from jwt.algorithms import ECAlgorithm

from api.holder import PLATFORM_AUDIENCE, HolderPrincipal
from api.mutual import imported
from api.platform import Platform
from api.verification import certificate_status, trust_anchors
from eauth.errors import (
    ChallengeInvalid,
    InvalidInput,
    InvalidLoginToken,
    LoginCertificateRefused,
    NotInitialized,
)
from keys.base import KeyAlgorithm, KeyStore, Signer
from keys.jws import encode_es256, jwk_thumbprint
from store.audit import record as audit
from store.ca_store import SqlCaStore
from store.db import Database
from store.login_store import (
    LoginKeyRecord,
    add_challenge,
    add_login_key,
    all_login_key_labels,
    consume_challenge,
    login_keys,
    retire_login_keys,
)
from verify.certificate import MAX_CHAIN, parse_certificate, verify_certificate
from verify.login import (
    MAX_SIGNATURE_BYTES,
    LoginClaims,
    LoginKey,
    challenge_message,
    check_login_certificate,
    verify_challenge_signature,
    verify_login_token,
)

LOGIN_KEY_PREFIX = "login-token-"
#: A retired key stays published this long after the longest-lived token it may have signed (a process
#: that read it as current just before the rotation may still sign with it for a moment).
RETIRE_MARGIN = timedelta(seconds=60)
AUDIENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}")
_LABEL_NUMBER = re.compile(re.escape(LOGIN_KEY_PREFIX) + r"(\d+)")


def utcnow() -> datetime:
    """Now (a function so that tests can move time)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: str
    audience: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Login:
    """A successful login: the token and what it says."""

    token: str
    claims: LoginClaims
    holder_name: str


def _audience(value: str) -> str:
    if not AUDIENCE.fullmatch(value):
        raise InvalidInput("audience must be 1 to 100 characters of letters, digits and . _ : / -",
                           field="audience")
    return value


def _signature(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("signature must be base64 (or base64url)", field="signature") from None
    if not raw or len(raw) > MAX_SIGNATURE_BYTES:
        raise InvalidInput(f"signature must be 1 to {MAX_SIGNATURE_BYTES} bytes", field="signature")
    return raw


class LoginService:
    """Challenges, logins, login tokens and their keys, for one platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.issuer = platform.settings.public_base_url
        self._signers: dict[str, Signer] = {}

    # -- challenge and login -----------------------------------------------------------------------

    def challenge(self, audience: str) -> Challenge:
        """A new single-use nonce for a login to ``audience``."""
        now = utcnow()
        challenge = Challenge(secrets.token_urlsafe(32), _audience(audience),
                              now + timedelta(seconds=self.platform.settings.login_challenge_ttl_seconds))
        with self.platform.db.transaction() as connection:
            add_challenge(connection, nonce=challenge.nonce, audience=challenge.audience, created_at=now,
                          expires_at=challenge.expires_at)
        return challenge

    def message(self, challenge: Challenge) -> bytes:
        return challenge_message(nonce=challenge.nonce, audience=challenge.audience, issuer=self.issuer)

    def login(self, *, certificate: str, chain: list[str], nonce: str, signature: str,
              audience: str | None = None) -> Login:
        """Check everything (see docs/login.md) and issue a login token for the challenge's audience
        (which must be ``audience`` when given)."""
        cert = parse_certificate(certificate, field="certificate")
        extra = [parse_certificate(text, field=f"chain[{i}]") for i, text in enumerate(chain[:MAX_CHAIN])]
        raw_signature = _signature(signature)
        if audience is not None:
            _audience(audience)
        now = utcnow()
        with self.platform.db.transaction() as connection:  # burnt whatever follows: one attempt per nonce
            audience = consume_challenge(connection, nonce=nonce[:64], audience=audience, now=now)
        if audience is None:
            raise ChallengeInvalid("the challenge is unknown, already used, expired or for another audience")
        report = verify_certificate(cert, chain=extra, trust=trust_anchors(self.platform),
                                    status=certificate_status(self.platform), now=now)
        id_kind = check_login_certificate(report, cert)
        verify_challenge_signature(cert, challenge_message(nonce=nonce, audience=audience, issuer=self.issuer),
                                   raw_signature)
        serial = f"{cert.serial_number:x}"
        with self.platform.db.transaction() as connection:
            store = SqlCaStore(connection)
            record = store.certificate(serial)
            if record is None or record.sha256 != report.sha256:
                raise LoginCertificateRefused("this platform logs in holders of the certificates it issued",
                                              reason="unknown")
            subject = store.subject(record.subject_id)
            kid, signer = self._current(connection, now)
            issued = int(now.timestamp())
            claims = LoginClaims(
                issuer=self.issuer, platform=self.platform.settings.platform_name, subject=subject.pseudonym,
                audience=audience, id_kind=id_kind, certificate_serial=serial, issued_at=issued,
                expires_at=issued + self.platform.settings.login_token_ttl_seconds,
                token_id=secrets.token_urlsafe(12), kid=kid,
            )
            token = self._sign(claims, signer)
            audit(connection, actor=f"holder:{subject.pseudonym}", action="holder.login",
                  subject=f"certificate:{serial}", details={"audience": audience, "jti": claims.token_id})
        return Login(token, claims, subject.name)

    def _sign(self, claims: LoginClaims, signer: Signer) -> str:
        payload = {"iss": claims.issuer, "sub": claims.subject, "aud": claims.audience, "iat": claims.issued_at,
                   "exp": claims.expires_at, "jti": claims.token_id, "id_kind": claims.id_kind,
                   "cert_serial": claims.certificate_serial}
        return encode_es256(json.dumps(payload, separators=(",", ":")).encode(), signer, kid=claims.kid,
                            headers={"typ": "JWT"})

    # -- verification --------------------------------------------------------------------------------

    def keys(self, now: datetime | None = None) -> dict[str, LoginKey]:
        """This platform's published login keys by kid (a ``verify.login.LoginKeySource``)."""
        with self.platform.db.transaction() as connection:
            records = login_keys(connection, now=now or utcnow())
        name = self.platform.settings.platform_name
        return {r.kid: LoginKey(r.kid, self._signer(r.label).public_key, self.issuer, name) for r in records}

    def verify(self, token: str, *, audience: str) -> LoginClaims:
        """The claims of a login token for ``audience`` of this platform or of a platform it trusts
        (mutual recognition: the imported login keys, each bound to its platform's issuer URL);
        InvalidLoginToken otherwise."""
        now = utcnow()
        keys = imported(self.platform).login_keys | self.keys(now)  # ours win a kid clash
        return verify_login_token(token, keys=keys, audience=audience, now=now.timestamp())

    def holder(self, token: str) -> HolderPrincipal:
        """The holder of a login token for the platform itself (its own keys only), whose certificate is
        still good."""
        now = utcnow()
        claims = verify_login_token(token, keys=self.keys(now), audience=PLATFORM_AUDIENCE, now=now.timestamp())
        with self.platform.db.transaction() as connection:
            store = SqlCaStore(connection)
            record = store.certificate(claims.certificate_serial)
            subject = store.subject(record.subject_id) if record is not None else None
        if subject is None or subject.pseudonym != claims.subject:
            raise InvalidLoginToken("the login token's certificate is not on record", reason="unknown_certificate")
        if record.status != "valid" or record.not_after <= utcnow():
            state = record.status if record.status != "valid" else "expired"
            raise InvalidLoginToken(f"the certificate this login was made with is {state}: log in again",
                                    reason=f"certificate_{state}")
        number = self.platform.ca.identities.decrypt(subject)
        return HolderPrincipal(
            subject_id=subject.pseudonym, id_kind=claims.id_kind, id_number=number, name=subject.name,
            certificate_serial=claims.certificate_serial, expires_at=claims.expires_at, token_id=claims.token_id,
        )

    # -- keys ----------------------------------------------------------------------------------------

    def _signer(self, label: str) -> Signer:
        signer = self._signers.get(label)
        if signer is None:
            signer = self._signers[label] = self.platform.keys.signer(label)
        return signer

    def _current(self, connection, now: datetime) -> tuple[str, Signer]:
        current = next((r for r in login_keys(connection, now=now) if r.retired_at is None), None)
        if current is None:
            raise NotInitialized("no login-token key (run `eauth init`)")
        return current.kid, self._signer(current.label)

    def jwks(self) -> list[dict]:
        """The published login keys as JWKs (``use`` sig, ``alg`` ES256)."""
        return [json.loads(ECAlgorithm.to_jwk(key.public_key)) | {"kid": kid, "use": "sig", "alg": "ES256"}
                for kid, key in self.keys().items()]

    def rotate(self) -> LoginKeyRecord:
        """A new signing key; the previous ones stay published until their last token has expired."""
        return rotate_login_key(self.platform.keys, self.platform.db,
                                ttl_seconds=self.platform.settings.login_token_ttl_seconds, now=utcnow())


def rotate_login_key(keys: KeyStore, db: Database, *, ttl_seconds: int, now: datetime) -> LoginKeyRecord:
    """Make a new login key (``login-token-<n>``), which signs from now; retire the others, published
    until every token they may have signed has expired."""
    with db.transaction() as connection:
        numbers = [int(m.group(1)) for label in all_login_key_labels(connection)
                   if (m := _LABEL_NUMBER.fullmatch(label))]
        number = max(numbers, default=0) + 1
        while keys.has_key(f"{LOGIN_KEY_PREFIX}{number}"):  # a key store kept from an earlier database
            number += 1
        label = f"{LOGIN_KEY_PREFIX}{number}"
        signer = keys.generate(label, KeyAlgorithm.EC_P256)
        try:
            record = LoginKeyRecord(kid=jwk_thumbprint(json.loads(ECAlgorithm.to_jwk(signer.public_key))),
                                    label=label, created_at=now, retired_at=None, not_after=None)
            add_login_key(connection, record)
            ttl = timedelta(seconds=ttl_seconds)
            retired = retire_login_keys(connection, except_kid=record.kid, at=now, not_after=now + ttl + RETIRE_MARGIN)
            audit(connection, actor="operator", action="login_key.rotate", subject=f"login-key:{record.kid}",
                  details={"label": label, "retired": retired})
        except BaseException:
            keys.delete(label)  # a key that never became a login key
            raise
    return record


def ensure_login_key(keys: KeyStore, db: Database, *, ttl_seconds: int) -> str | None:
    """Make the first login key if there is none (``eauth init``); the label of the key made, if one was."""
    with db.transaction() as connection:
        if all_login_key_labels(connection):
            return None
    return rotate_login_key(keys, db, ttl_seconds=ttl_seconds, now=utcnow()).label


def login_service(platform: Platform) -> LoginService:
    return platform.kept(LoginService)
