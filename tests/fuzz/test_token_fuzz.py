"""Fuzz the JWS token verifiers: the license QR token and the presentation token (their verify
routes' ``check``, which reports rather than raises), the holder login token (``LoginService.verify``
and ``.holder``) and the agency access token (``TokenService.verify``). Inputs: random text, mutations
of a real token, tokens of arbitrary JSON header and payload, and arbitrary JSON signed with the very
key the verifier trusts (what a trusted foreign platform could send). Only domain errors or a result."""

from __future__ import annotations

import base64
import json
import time
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.login import login_service, utcnow
from api.platform import QR_KEY_LABEL
from api.routes import presentations, verify
from api.tokens import AccessToken
from eauth.errors import EauthError
from keys.jws import encode_es256
from licenses.identifiers import LicenseIdentifier
from licenses.presentation import PresentationClaims, sign_presentation
from licenses.token import QrClaims, QrTokenSigner, qr_key_id
from store.agencies import SCOPES, add_agency
from tests.api.holders import holder_login
from tests.conftest import token_for
from tests.fuzz.harness import domain_outcome, fuzzing, mutated, text_inputs
from tests.helpers import citizen_id, credit_code
from verify.login import LoginClaims
from verify.presentation import PresentationReport
from verify.qr import QrReport

#: Header and claim names the verifiers look at, so generated objects hit their branches.
NAMES = ("alg", "kid", "typ", "crit", "jku", "x5u", "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "agency",
         "id_kind", "cert_serial", "lid", "lt", "ls", "f")
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
OBJECTS = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), JSON, max_size=8)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def structured(draw) -> str:
    """header.payload.signature of arbitrary JSON (or bytes) and a random signature."""
    def part() -> bytes:
        return draw(st.one_of(OBJECTS.map(lambda o: json.dumps(o).encode()), JSON.map(lambda v: json.dumps(v).encode()),
                              st.binary(max_size=64)))
    return ".".join((_b64(part()), _b64(part()), _b64(draw(st.binary(max_size=80)))))


def signed_by(signer, kid: str) -> st.SearchStrategy[str]:
    """Arbitrary header members and payload (JSON or bytes), really signed with ``signer``."""
    payloads = OBJECTS.map(lambda o: json.dumps(o).encode()) | JSON.map(lambda v: json.dumps(v).encode()) | st.binary(
        max_size=64)
    headers = st.dictionaries(st.sampled_from(("typ", "crit", "cty", "x5u", "extra")), JSON, max_size=2)
    return st.builds(lambda payload, header: encode_es256(payload, signer, kid=kid, headers=header), payloads, headers)


@st.composite
def resigned(draw, seeds: list[str], signer, kid: str) -> str:
    """A real token whose claims were changed (values replaced by arbitrary JSON, members dropped) or,
    for a binary payload, whose payload was mutated, signed again with ``signer``: shape checks behind
    the signature (a trusted key can sign anything)."""
    seed = draw(st.sampled_from(seeds))
    header = json.loads(_unb64(seed.split(".")[0]))
    payload = _unb64(seed.split(".")[1])
    try:
        claims = json.loads(payload)
    except ValueError:
        payload = draw(mutated([payload]))
    else:
        for name in draw(st.lists(st.sampled_from(sorted(claims)), max_size=3, unique=True)):
            if draw(st.booleans()):
                claims[name] = draw(JSON)
            else:
                del claims[name]
        payload = json.dumps(claims).encode()
    extra = {k: v for k, v in header.items() if k not in ("alg", "kid")}
    return encode_es256(payload, signer, kid=kid, headers=extra)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def tokens(seeds: list[str], signer, kid: str) -> st.SearchStrategy[str]:
    return st.one_of(text_inputs(seeds), structured(), signed_by(signer, kid), resigned(seeds, signer, kid),
                     resigned(seeds, signer, kid))


@pytest.fixture(scope="module")
def qr(platform) -> tuple[list[str], object, str]:
    signer = platform.keys.signer(QR_KEY_LABEL)
    kid = qr_key_id(signer.public_key)
    identifier = LicenseIdentifier(type_code=credit_code() + "901", issuer_code="440300", serial="1F", version=1)
    qr_token = QrTokenSigner(signer, kid).sign(QrClaims(identifier=identifier, issued_on=date.today(), expires_on=None,
                                                        digest_prefix=bytes(16)))
    now = int(time.time())
    presentation = sign_presentation(PresentationClaims(
        issuer=platform.settings.public_base_url, identifier=identifier.text, type_code=identifier.type_code,
        issuer_code=identifier.issuer_code, fields={"姓名": "张三"}, issued_at=now, expires_at=now + 600), signer, kid=kid)
    return [qr_token, presentation], signer, kid


def test_qr_token(platform, qr, watchdog):
    seeds, signer, kid = qr

    @fuzzing(examples=300)
    @given(token=tokens(seeds, signer, kid))
    def run(token: str) -> None:
        assert isinstance(domain_outcome(watchdog, verify.check, platform, token), QrReport | EauthError)

    run()


def test_presentation_token(platform, qr, watchdog):
    seeds, signer, kid = qr

    @fuzzing(examples=300)
    @given(token=tokens(seeds, signer, kid))
    def run(token: str) -> None:
        assert isinstance(domain_outcome(watchdog, presentations.check, platform, token), PresentationReport | EauthError)

    run()


def test_login_token(api, platform, watchdog):
    service = login_service(platform)
    token, _ = holder_login(api, platform, id_number=citizen_id())
    with platform.db.transaction() as connection:
        kid, signer = service._current(connection, utcnow())

    @fuzzing(examples=300)
    @given(token=tokens([token], signer, kid))
    def run(token: str) -> None:
        assert isinstance(domain_outcome(watchdog, service.verify, token, audience="eauth"), LoginClaims | EauthError)
        domain_outcome(watchdog, service.holder, token)

    run()


def test_access_token(api, platform, watchdog):
    code = f"fz-{credit_code()[-6:]}"
    with platform.db.session() as session:
        add_agency(session, code=code, name="模糊测试机关", credit_code=None)
    token = token_for(api, platform, code, set(SCOPES))
    signer = platform.keys.signer(platform.tokens._signer.label)

    @fuzzing(examples=300)
    @given(token=tokens([token], signer, platform.tokens.kid))
    def run(token: str) -> None:
        assert isinstance(domain_outcome(watchdog, platform.tokens.verify, token), AccessToken | EauthError)

    run()
