"""A platform's trust bundle: everything a relying party needs to verify the platform's certificates,
signed PDFs and license QR tokens offline, in one versioned JSON document.

    {
      "format": "eauth-trust-bundle",
      "version": 1,
      "platform": {"name": "…", "id": "<SHA-256 of the root certificate, hex>", "base_url": "https://…"},
      "created_at": "2026-01-01T00:00:00+00:00",
      "certificates": [{"name": "root", "role": "root", "pem": "-----BEGIN CERTIFICATE-----…"}, …],
      "qr_keys": {"keys": [{"kty": "EC", "crv": "P-256", "x": "…", "y": "…", "kid": "…", "use": "sig",
                            "alg": "ES256"}]}
    }

``certificates`` holds the root(s) (role ``root``), the issuing CAs (``issuing``), the delegated OCSP
signers (``ocsp``) and the time-stamping authority (``tsa``); ``qr_keys`` the public keys that sign
license QR tokens, as a JWKS under the kids the tokens carry (``licenses.token.qr_key_id``).

The platform id is the SHA-256 of the DER of the first root: stable for the platform's life (a root
is never re-issued), and what a relying party pins when it imports the bundle. ``from_json`` is
strict: unknown or missing members, a root that is not self-signed or does not hash to the id, a
certificate that does not chain to a root of the bundle, a QR key that is not P-256 or whose kid is
not its thumbprint: each is ``InvalidTrustBundle`` naming the member at fault (``path``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from jwt.algorithms import ECAlgorithm

from eauth.errors import InvalidTrustBundle
from licenses.token import qr_key_id
from verify.pdf import TrustAnchor, TrustAnchors

FORMAT = "eauth-trust-bundle"
VERSION = 1
ROLES = ("root", "issuing", "ocsp", "tsa")
#: A bundle larger than this is refused before parsing (a real one is ~10 KB).
MAX_BUNDLE_BYTES = 1 << 20
MAX_CERTIFICATES = 64
MAX_QR_KEYS = 16
_TOP = {"format", "version", "platform", "created_at", "certificates", "qr_keys"}
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
    """A platform's roots, CA / OCSP / TSA certificates and QR token keys (see the module doc)."""

    platform_name: str
    platform_id: str
    base_url: str | None
    created_at: datetime
    certificates: tuple[BundleCertificate, ...]
    qr_public_keys: tuple[tuple[str, ec.EllipticCurvePublicKey], ...]

    @classmethod
    def build(cls, *, platform_name: str, certificates: Iterable[BundleCertificate],
              qr_keys: Mapping[str, ec.EllipticCurvePublicKey], base_url: str | None = None,
              created_at: datetime | None = None) -> TrustBundle:
        """A bundle for a platform; roots first. Checked as ``from_json`` checks a bundle read."""
        certs = sorted(certificates, key=lambda c: ROLES.index(c.role) if c.role in ROLES else len(ROLES))
        roots = [c for c in certs if c.role == "root"]
        if not roots:
            raise InvalidTrustBundle("a trust bundle needs at least one root certificate", path="certificates")
        bundle = cls(platform_name=platform_name, platform_id=_fingerprint(roots[0].certificate), base_url=base_url,
                     created_at=(created_at or datetime.now(timezone.utc)).replace(microsecond=0),
                     certificates=tuple(certs), qr_public_keys=tuple(sorted(qr_keys.items())))
        bundle._check()
        return bundle

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

    def jwks(self) -> dict:
        keys = []
        for kid, key in self.qr_public_keys:
            keys.append(ECAlgorithm.to_jwk(key, as_dict=True) | {"kid": kid, "use": "sig", "alg": "ES256"})
        return {"keys": keys}

    # --- JSON ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "platform": {"name": self.platform_name, "id": self.platform_id, "base_url": self.base_url},
            "created_at": self.created_at.isoformat(),
            "certificates": [{"name": c.name, "role": c.role,
                              "pem": c.certificate.public_bytes(Encoding.PEM).decode("ascii")}
                             for c in self.certificates],
            "qr_keys": self.jwks(),
        }

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
        top = _members(document, _TOP, "")
        if top["format"] != FORMAT:
            raise InvalidTrustBundle(f"format must be {FORMAT!r}, not {top['format']!r}", path="format")
        if type(top["version"]) is not int or top["version"] != VERSION:
            raise InvalidTrustBundle(f"version {top['version']!r} is not supported (this verifier reads version "
                                     f"{VERSION})", path="version")
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
        bundle = cls(platform_name=name, platform_id=platform_id, base_url=base_url, created_at=created_at,
                     certificates=certificates, qr_public_keys=_qr_keys(top["qr_keys"]))
        bundle._check()
        return bundle

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


def _qr_keys(value: object) -> tuple[tuple[str, ec.EllipticCurvePublicKey], ...]:
    jwks = _members(value, {"keys"}, "qr_keys")
    keys = jwks["keys"]
    if not isinstance(keys, list):
        raise InvalidTrustBundle("qr_keys.keys must be a list", path="qr_keys.keys")
    if len(keys) > MAX_QR_KEYS:
        raise InvalidTrustBundle(f"more than {MAX_QR_KEYS} QR keys", path="qr_keys.keys")
    found: dict[str, ec.EllipticCurvePublicKey] = {}
    for i, jwk in enumerate(keys):
        path = f"qr_keys.keys[{i}]"
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
            raise InvalidTrustBundle(f"two QR keys have the kid {kid!r}", path=f"{path}.kid")
        found[kid] = key
    return tuple(sorted(found.items()))
