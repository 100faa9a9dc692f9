"""A platform's trust bundle: everything a relying party needs to verify the platform's certificates,
signed PDFs and license QR tokens offline, in one versioned JSON document.

    {
      "format": "eauth-trust-bundle",
      "version": 2,
      "platform": {"name": "…", "id": "<SHA-256 of the root certificate, hex>", "base_url": "https://…"},
      "created_at": "2026-01-01T00:00:00+00:00",
      "certificates": [{"name": "root", "role": "root", "pem": "-----BEGIN CERTIFICATE-----…"}, …],
      "qr_keys": {"keys": [{"kty": "EC", "crv": "P-256", "x": "…", "y": "…", "kid": "…", "use": "sig",
                            "alg": "ES256"}]},
      "login_keys": {"keys": [… the same, for login tokens (kid: the full RFC 7638 thumbprint) …]},
      "signature": {"algorithm": "ecdsa-with-SHA256", "value": "<base64>"}
    }

``certificates`` holds the root(s) (role ``root``), the issuing CAs (``issuing``), the delegated OCSP
signers (``ocsp``) and the time-stamping authority (``tsa``); ``qr_keys`` the public keys that sign
license QR tokens, as a JWKS under the kids the tokens carry (``licenses.token.qr_key_id``);
``login_keys`` the published keys of its login tokens (``verify.login``).

Version 2 is signed: ``signature`` is the platform root key's signature (``ecdsa-with-SHA256``, DER, or
``sha256WithRSAEncryption``) over the canonical JSON (sorted keys, no spaces, UTF-8) of every other
member, so a bundle altered on its way to another platform is refused. Version 1 (no login keys, not
signed) is still read, for offline verification with bundles exported before.

The platform id is the SHA-256 of the DER of the first root: stable for the platform's life (a root
is never re-issued), and what a relying party pins when it imports the bundle. ``from_json`` is
strict: unknown or missing members, a root that is not self-signed or does not hash to the id, a
certificate that does not chain to a root of the bundle, a QR key that is not P-256 or whose kid is
not its thumbprint, a version 2 signature that does not verify with the root's key: each is
``InvalidTrustBundle`` naming the member at fault (``path``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm

from eauth.errors import InvalidTrustBundle
from keys.base import Signer
from keys.jws import jwk_thumbprint
from licenses.token import qr_key_id
from verify.pdf import TrustAnchor, TrustAnchors

FORMAT = "eauth-trust-bundle"
VERSION = 2
#: The versions read: 1 (unsigned, no login keys) and 2.
VERSIONS = (1, 2)
ROLES = ("root", "issuing", "ocsp", "tsa")
#: A bundle larger than this is refused before parsing (a real one is ~10 KB).
MAX_BUNDLE_BYTES = 1 << 20
MAX_CERTIFICATES = 64
MAX_QR_KEYS = 16
_TOP_V1 = {"format", "version", "platform", "created_at", "certificates", "qr_keys"}
_TOP = {1: _TOP_V1, 2: _TOP_V1 | {"login_keys", "signature"}}
_SIGNATURE = {"algorithm", "value"}
EC_SIGNATURE, RSA_SIGNATURE = "ecdsa-with-SHA256", "sha256WithRSAEncryption"
_PLATFORM = {"name", "id", "base_url"}
_CERTIFICATE = {"name", "role", "pem"}
_JWK_REQUIRED = {"kty", "crv", "x", "y", "kid"}
_JWK_ALLOWED = _JWK_REQUIRED | {"use", "alg"}


@dataclass(frozen=True, slots=True)
class BundleCertificate:
    """One of the platform's own certificates, by its name in the hierarchy and its role."""

    name: str
    role: str  # root | issuing | ocsp | tsa
    certificate: x509.Certificate


@dataclass(frozen=True, slots=True)
class TrustBundle:
    """A platform's roots, CA / OCSP / TSA certificates, QR and login token keys (see the module doc)."""

    platform_name: str
    platform_id: str
    base_url: str | None
    created_at: datetime
    certificates: tuple[BundleCertificate, ...]
    qr_public_keys: tuple[tuple[str, ec.EllipticCurvePublicKey], ...]
    login_public_keys: tuple[tuple[str, ec.EllipticCurvePublicKey], ...] = ()
    version: int = VERSION
    #: The root key's signature (version 2), None until ``signed``; version 1 bundles have none.
    signature: bytes | None = None

    @classmethod
    def build(cls, *, platform_name: str, certificates: Iterable[BundleCertificate],
              qr_keys: Mapping[str, ec.EllipticCurvePublicKey],
              login_keys: Mapping[str, ec.EllipticCurvePublicKey] | None = None, base_url: str | None = None,
              created_at: datetime | None = None) -> TrustBundle:
        """An unsigned version 2 bundle for a platform, roots first, checked as ``from_json`` checks a
        bundle read; ``signed`` makes it publishable."""
        certs = sorted(certificates, key=lambda c: ROLES.index(c.role) if c.role in ROLES else len(ROLES))
        roots = [c for c in certs if c.role == "root"]
        if not roots:
            raise InvalidTrustBundle("a trust bundle needs at least one root certificate", path="certificates")
        bundle = cls(platform_name=platform_name, platform_id=_fingerprint(roots[0].certificate), base_url=base_url,
                     created_at=(created_at or datetime.now(timezone.utc)).replace(microsecond=0),
                     certificates=tuple(certs), qr_public_keys=tuple(sorted(qr_keys.items())),
                     login_public_keys=tuple(sorted((login_keys or {}).items())))
        bundle._check()
        return bundle

    def signed(self, root_key: Signer) -> TrustBundle:
        """This bundle signed by the platform root's key (``root_key``: the signer of the first root)."""
        if self.version != VERSION:
            raise ValueError(f"only version {VERSION} bundles are signed")
        if _public_der(root_key.public_key) != _public_der(self.root.public_key()):
            raise ValueError("the signing key is not the root certificate's key")
        return replace(self, signature=root_key.sign(self.signed_content()))

    @property
    def root(self) -> x509.Certificate:
        """The platform's root certificate (the first one: its SHA-256 is the platform id)."""
        return self.certificates[0].certificate

    def signed_content(self) -> bytes:
        """What the signature covers: the canonical JSON of every member but ``signature``."""
        return json.dumps(self._body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    # --- what verification uses ---------------------------------------------------------------------

    def trust_anchors(self) -> TrustAnchors:
        """The roots, named after the platform, and the other certificates as intermediates."""
        return TrustAnchors(
            roots=tuple(TrustAnchor(self.platform_name, c.certificate) for c in self.certificates if c.role == "root"),
            intermediates=tuple(c.certificate for c in self.certificates if c.role != "root"),
        )

    def qr_keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """The QR token keys by kid (``licenses.token.verify_qr_token``'s ``keys``)."""
        return dict(self.qr_public_keys)

    def login_keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """The login token keys by kid (empty for a version 1 bundle)."""
        return dict(self.login_public_keys)

    def jwks(self) -> dict:
        """The QR token keys as a JWKS."""
        return _jwks(self.qr_public_keys)

    # --- JSON ---------------------------------------------------------------------------------------

    def _body(self) -> dict:
        body = {
            "format": FORMAT,
            "version": self.version,
            "platform": {"name": self.platform_name, "id": self.platform_id, "base_url": self.base_url},
            "created_at": self.created_at.isoformat(),
            "certificates": [{"name": c.name, "role": c.role,
                              "pem": c.certificate.public_bytes(Encoding.PEM).decode("ascii")}
                             for c in self.certificates],
            "qr_keys": self.jwks(),
        }
        if self.version >= 2:
            body["login_keys"] = _jwks(self.login_public_keys)
        return body

    def to_dict(self) -> dict:
        """The document; a version 2 bundle must be ``signed`` first."""
        body = self._body()
        if self.version >= 2:
            if self.signature is None:
                raise ValueError("a version 2 trust bundle is published signed (TrustBundle.signed)")
            body["signature"] = {"algorithm": _signature_algorithm(self.root),
                                 "value": base64.b64encode(self.signature).decode("ascii")}
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> TrustBundle:
        """The bundle in ``text``; ``InvalidTrustBundle`` (with ``path``) for anything not exactly a bundle."""
        if len(text) > MAX_BUNDLE_BYTES:
            raise InvalidTrustBundle(f"larger than {MAX_BUNDLE_BYTES >> 10} KiB: not a trust bundle", path="")
        try:
            document = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidTrustBundle(f"not JSON: {exc}", path="") from None
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: object) -> TrustBundle:
        if isinstance(document, dict) and "version" in document:
            version = document["version"]
            if type(version) is not int or version not in VERSIONS:
                raise InvalidTrustBundle(f"version {version!r} is not supported (this verifier reads versions "
                                         f"{', '.join(map(str, VERSIONS))})", path="version")
        else:
            version = VERSION  # for the message about the missing member
        top = _members(document, _TOP[version], "")
        if top["format"] != FORMAT:
            raise InvalidTrustBundle(f"format must be {FORMAT!r}, not {top['format']!r}", path="format")
        platform = _members(top["platform"], _PLATFORM, "platform")
        name = _string(platform["name"], "platform.name")
        platform_id = _string(platform["id"], "platform.id")
        base_url = platform["base_url"]
        if base_url is not None:
            base_url = _string(base_url, "platform.base_url")
        created = _string(top["created_at"], "created_at")
        try:
            created_at = datetime.fromisoformat(created)
        except ValueError:
            raise InvalidTrustBundle(f"created_at {created!r} is not an ISO 8601 date-time", path="created_at") from None
        if created_at.utcoffset() is None:
            raise InvalidTrustBundle("created_at needs a time zone", path="created_at")
        entries = top["certificates"]
        if not isinstance(entries, list) or not entries:
            raise InvalidTrustBundle("certificates must be a non-empty list", path="certificates")
        if len(entries) > MAX_CERTIFICATES:
            raise InvalidTrustBundle(f"more than {MAX_CERTIFICATES} certificates", path="certificates")
        certificates = tuple(_certificate(entry, f"certificates[{i}]") for i, entry in enumerate(entries))
        login_keys, signature = (), None
        if version >= 2:
            login_keys = _keys(top["login_keys"], "login_keys")
            signature = _signature(top["signature"])
        bundle = cls(platform_name=name, platform_id=platform_id, base_url=base_url, created_at=created_at,
                     certificates=certificates, qr_public_keys=_keys(top["qr_keys"], "qr_keys"),
                     login_public_keys=login_keys, version=version, signature=signature)
        bundle._check()
        if version >= 2:
            bundle._check_signature(top["signature"]["algorithm"])
        return bundle

    def _check_signature(self, algorithm: str) -> None:
        root = self.root
        if algorithm != _signature_algorithm(root):
            raise InvalidTrustBundle(f"signature algorithm {algorithm!r} is not the root key's "
                                     f"({_signature_algorithm(root)})", path="signature.algorithm")
        key = root.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(self.signature, self.signed_content(), ec.ECDSA(hashes.SHA256()))
            else:
                key.verify(self.signature, self.signed_content(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise InvalidTrustBundle("the signature does not verify with the root certificate's key: the bundle "
                                     "was altered, or not made by this platform", path="signature.value") from None

    def _check(self) -> None:
        if not self.platform_name.strip():
            raise InvalidTrustBundle("the platform name is empty", path="platform.name")
        names = [c.name for c in self.certificates]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise InvalidTrustBundle(f"two certificates are named {name!r}", path=f"certificates[{i}].name")
        roots = [(i, c) for i, c in enumerate(self.certificates) if c.role == "root"]
        if not roots:
            raise InvalidTrustBundle("no certificate has the role root", path="certificates")
        if roots[0][0] != 0:
            raise InvalidTrustBundle("the first certificate must be the root", path="certificates[0].role")
        for i, root in roots:
            cert = root.certificate
            if cert.issuer != cert.subject or not _signed_by(cert, cert) or not _is_ca(cert):
                raise InvalidTrustBundle(f"root {root.name!r} is not a self-signed CA certificate",
                                         path=f"certificates[{i}].pem")
        expected = _fingerprint(roots[0][1].certificate)
        if self.platform_id != expected:
            raise InvalidTrustBundle(f"the platform id {self.platform_id!r} is not the SHA-256 of the root "
                                     f"certificate ({expected})", path="platform.id")
        issuers = [c.certificate for c in self.certificates if c.role in ("root", "issuing")]
        for i, entry in enumerate(self.certificates):
            if entry.role == "root":
                continue
            if not any(_signed_by(entry.certificate, issuer) for issuer in issuers if issuer != entry.certificate):
                raise InvalidTrustBundle(f"certificate {entry.name!r} is not issued by a CA of this bundle",
                                         path=f"certificates[{i}].pem")
            if entry.role == "issuing" and not _is_ca(entry.certificate):
                raise InvalidTrustBundle(f"issuing CA {entry.name!r} is not a CA certificate",
                                         path=f"certificates[{i}].pem")
        for kid, key in self.qr_public_keys:
            if qr_key_id(key) != kid:
                raise InvalidTrustBundle(f"QR key {kid!r}: the kid is not the key's thumbprint "
                                         f"({qr_key_id(key)})", path="qr_keys")
        for kid, key in self.login_public_keys:
            thumbprint = jwk_thumbprint(ECAlgorithm.to_jwk(key, as_dict=True))
            if thumbprint != kid:
                raise InvalidTrustBundle(f"login key {kid!r}: the kid is not the key's thumbprint ({thumbprint})",
                                         path="login_keys")
        root_key = self.root.public_key()
        if not isinstance(root_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise InvalidTrustBundle("the root key is neither EC nor RSA", path="certificates[0].pem")


def _jwks(keys: Iterable[tuple[str, ec.EllipticCurvePublicKey]]) -> dict:
    return {"keys": [ECAlgorithm.to_jwk(key, as_dict=True) | {"kid": kid, "use": "sig", "alg": "ES256"}
                     for kid, key in keys]}


def _public_der(key) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _signature_algorithm(root: x509.Certificate) -> str:
    return EC_SIGNATURE if isinstance(root.public_key(), ec.EllipticCurvePublicKey) else RSA_SIGNATURE


def _signature(value: object) -> bytes:
    members = _members(value, _SIGNATURE, "signature")
    _string(members["algorithm"], "signature.algorithm")
    text = _string(members["value"], "signature.value")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidTrustBundle("signature.value must be base64", path="signature.value") from None
    if not raw or len(raw) > 1024:
        raise InvalidTrustBundle("signature.value must be 1 to 1024 bytes", path="signature.value")
    return raw


def _fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
        return True
    except Exception:  # ValueError (names), InvalidSignature, TypeError (key type)
        return False


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _members(value: object, expected: set[str], path: str) -> dict:
    where = path or "the document"
    if not isinstance(value, dict):
        raise InvalidTrustBundle(f"{where} must be a JSON object", path=path)
    missing, unknown = expected - value.keys(), value.keys() - expected
    if missing:
        raise InvalidTrustBundle(f"{where} lacks {', '.join(sorted(missing))}", path=_join(path, sorted(missing)[0]))
    if unknown:
        raise InvalidTrustBundle(f"{where} has unknown members {', '.join(sorted(unknown))}",
                                 path=_join(path, sorted(unknown)[0]))
    return value


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidTrustBundle(f"{path} must be a string", path=path)
    return value


def _certificate(entry: object, path: str) -> BundleCertificate:
    members = _members(entry, _CERTIFICATE, path)
    name = _string(members["name"], f"{path}.name")
    role = _string(members["role"], f"{path}.role")
    if role not in ROLES:
        raise InvalidTrustBundle(f"role {role!r} is not one of {', '.join(ROLES)}", path=f"{path}.role")
    pem = _string(members["pem"], f"{path}.pem")
    if pem.count("-----BEGIN CERTIFICATE-----") != 1:
        raise InvalidTrustBundle("pem must hold exactly one PEM certificate", path=f"{path}.pem")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidTrustBundle(f"not a PEM certificate: {exc}", path=f"{path}.pem") from None
    return BundleCertificate(name=name, role=role, certificate=certificate)


def _keys(value: object, member: str) -> tuple[tuple[str, ec.EllipticCurvePublicKey], ...]:
    jwks = _members(value, {"keys"}, member)
    keys = jwks["keys"]
    what = "QR" if member == "qr_keys" else "login"
    if not isinstance(keys, list):
        raise InvalidTrustBundle(f"{member}.keys must be a list", path=f"{member}.keys")
    if len(keys) > MAX_QR_KEYS:
        raise InvalidTrustBundle(f"more than {MAX_QR_KEYS} {what} keys", path=f"{member}.keys")
    found: dict[str, ec.EllipticCurvePublicKey] = {}
    for i, jwk in enumerate(keys):
        path = f"{member}.keys[{i}]"
        if not isinstance(jwk, dict) or not _JWK_REQUIRED <= jwk.keys() or not jwk.keys() <= _JWK_ALLOWED:
            raise InvalidTrustBundle(f"{path} must be an EC public JWK with kty, crv, x, y, kid (and optionally "
                                     "use, alg)", path=path)
        if jwk["kty"] != "EC" or jwk["crv"] != "P-256" or jwk.get("alg", "ES256") != "ES256" \
                or jwk.get("use", "sig") != "sig":
            raise InvalidTrustBundle(f"{path} is not a P-256 ES256 signature key", path=path)
        kid = _string(jwk["kid"], f"{path}.kid")
        try:
            key = ECAlgorithm.from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")})
        except Exception as exc:  # pyjwt's InvalidKeyError, or a point off the curve
            raise InvalidTrustBundle(f"{path} is not a valid P-256 public key: {exc}", path=path) from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidTrustBundle(f"{path} is a private key: a bundle holds public keys only", path=path)
        if kid in found:
            raise InvalidTrustBundle(f"two {what} keys have the kid {kid!r}", path=f"{path}.kid")
        found[kid] = key
    return tuple(sorted(found.items()))
