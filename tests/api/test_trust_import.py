"""Importing another platform's trust bundle (mutual recognition, ``api.mutual``): what is refused
(malformed, unsigned, tampered, our own, a fingerprint other than the one confirmed, duplicates, an
expired root), the audit entries of import and removal, and the operator's HTTP endpoints (scope
``trust:manage``). The two-instance test is tests/api/test_mutual_recognition.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from api.mutual import import_bundle, imported, list_platforms, remove_platform
from api.platform import Platform, initialize_platform
from api.trust import trust_bundle
from eauth.errors import (
    InvalidTrustBundle,
    PlatformAlreadyTrusted,
    TrustedPlatformNotFound,
    TrustImportRefused,
)
from eauth.settings import Settings
from store.models import AuditEntry
from tests.conftest import token_for
from tests.helpers import PASSPHRASE, assert_problem

PATH = "/api/v1/trust/platforms"


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> dict:
    """The signed bundle of another platform (its own data dir and SQLite database), as a document."""
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("foreign"), key_passphrase=PASSPHRASE,
                        platform_name="外省平台 Other province", public_base_url="https://other.example")
    initialize_platform(settings)
    other = Platform.open(settings)
    try:
        return trust_bundle(other).to_dict()
    finally:
        other.close()


@pytest.fixture
def cleanup(platform):
    """Whatever a test imported is removed afterwards (the session's platform is shared)."""
    yield
    for trusted in list_platforms(platform):
        remove_platform(platform, trusted.name, actor="operator")


def _import(platform, document, *, name="Other", root=None, **kw):
    return import_bundle(platform, json.dumps(document), name=name, root_sha256=root or document["platform"]["id"],
                         actor="operator", **kw)


def _audit(platform, action: str) -> list[AuditEntry]:
    with platform.db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


def test_import_list_remove(platform, foreign, cleanup):
    done = _import(platform, foreign, name="Other", root=":".join(
        foreign["platform"]["id"][i:i + 2].upper() for i in range(0, 64, 2)))  # as openssl prints it
    assert done.platform_id == foreign["platform"]["id"] and done.base_url == "https://other.example"
    assert [t.name for t in list_platforms(platform)] == ["Other"]
    trust = imported(platform)
    assert [a.name for a in trust.roots] == ["Other"]
    assert trust.qr_keys and trust.login_keys
    assert {k.issuer for k in trust.login_keys.values()} == {"https://other.example"}
    entry = _audit(platform, "trust.import")[-1]
    assert entry.subject == f"platform:{done.platform_id}" and json.loads(entry.details)["name"] == "Other"

    removed = remove_platform(platform, "Other", actor="operator")
    assert removed.platform_id == done.platform_id
    assert imported(platform).roots == () and list_platforms(platform) == []
    assert _audit(platform, "trust.remove")[-1].subject == f"platform:{done.platform_id}"
    with pytest.raises(TrustedPlatformNotFound):
        remove_platform(platform, "Other", actor="operator")


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b'{"format": "eauth-trust-bundle"}'])
def test_malformed(platform, data):
    with pytest.raises(InvalidTrustBundle):
        import_bundle(platform, data, name="X", root_sha256="ab" * 32, actor="operator")
    assert list_platforms(platform) == []


def test_unsigned_version_1_refused(platform, foreign):
    document = dict(foreign, version=1)
    del document["login_keys"], document["signature"]
    with pytest.raises(InvalidTrustBundle) as raised:
        _import(platform, document)
    assert raised.value.extra["path"] == "version"


@pytest.mark.parametrize("change, path", [
    (lambda d: d["platform"].update(base_url="https://attacker.example"), "signature.value"),
    (lambda d: d["qr_keys"]["keys"].clear(), "signature.value"),
    (lambda d: d.pop("signature"), "signature"),
])
def test_tampered_refused(platform, foreign, change, path):
    document = json.loads(json.dumps(foreign))
    change(document)
    with pytest.raises(InvalidTrustBundle) as raised:
        _import(platform, document)
    assert raised.value.extra["path"] == path
    assert list_platforms(platform) == []


def test_own_bundle_refused(platform):
    own = trust_bundle(platform).to_dict()
    with pytest.raises(TrustImportRefused) as raised:
        _import(platform, own)
    assert raised.value.extra["reason"] == "own_platform"


def test_own_name_refused(platform, foreign):
    with pytest.raises(TrustImportRefused) as raised:
        _import(platform, foreign, name=platform.settings.platform_name)
    assert raised.value.extra["reason"] == "own_platform"


def test_wrong_fingerprint_refused(platform, foreign):
    with pytest.raises(TrustImportRefused) as raised:
        _import(platform, foreign, root="00" * 32)
    assert raised.value.extra["reason"] == "fingerprint_mismatch"
    with pytest.raises(Exception, match="64 hex digits"):
        _import(platform, foreign, root="not a fingerprint")


def test_expired_root_refused(platform, foreign):
    with pytest.raises(TrustImportRefused) as raised:
        _import(platform, foreign, now=datetime.now(timezone.utc) + timedelta(days=365 * 40))
    assert raised.value.extra["reason"] == "root_expired"


def test_duplicates_refused(platform, foreign, cleanup):
    _import(platform, foreign, name="Other")
    with pytest.raises(PlatformAlreadyTrusted, match="its root"):
        _import(platform, foreign, name="Other again")
    with pytest.raises(PlatformAlreadyTrusted, match="the name"):
        _import(platform, foreign, name="Other")
    assert [t.name for t in list_platforms(platform)] == ["Other"]


def test_http(api, platform, agency, foreign, cleanup):
    headers = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'trust:manage'})}"}
    body = {"name": "Other", "root_sha256": foreign["platform"]["id"], "bundle": foreign}
    created = api.post(PATH, json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Other" and created.json()["login_keys"] >= 1
    assert [t["name"] for t in api.get(PATH, headers=headers).json()] == ["Other"]
    assert_problem(api.post(PATH, json=body, headers=headers), 409, "platform_already_trusted")
    tampered = json.loads(json.dumps(foreign))
    tampered["platform"]["base_url"] = "https://attacker.example"
    problem = assert_problem(api.post(PATH, json=body | {"name": "T", "bundle": tampered}, headers=headers), 400,
                             "invalid_trust_bundle")
    assert problem["path"] == "signature.value"
    assert_problem(api.post(PATH, json=body | {"name": "W", "root_sha256": "11" * 32}, headers=headers), 400,
                   "trust_import_refused")
    assert api.delete(f"{PATH}/Other", headers=headers).status_code == 204
    assert_problem(api.delete(f"{PATH}/Other", headers=headers), 404, "trusted_platform_not_found")
    assert api.get(PATH, headers=headers).json() == []
    entry = _audit(platform, "trust.remove")[-1]
    assert entry.actor.startswith("client:")


def test_cli_one_line_errors(foreign, tmp_path, settings):
    from tests.api.test_cli import Cli, assert_one_line_error

    cli = Cli(workdir=tmp_path, data_dir=Path(settings.data_dir), database_url=settings.database_url)
    bundle = tmp_path / "other.json"
    bundle.write_text(json.dumps(foreign))
    assert_one_line_error(cli.run("trust", "import", str(bundle), "--name", "Other", "--root-sha256", "00" * 32),
                          "trust_import_refused")
    assert_one_line_error(cli.run("trust", "import", str(tmp_path / "missing.json"), "--name", "Other",
                                  "--root-sha256", "00" * 32), "cannot read")
    assert_one_line_error(cli.run("trust", "remove", "Nobody"), "trusted_platform_not_found")
    assert "no trusted platforms" in cli.ok("trust", "list").stdout
