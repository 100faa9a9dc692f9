"""Issuance edge cases in the domain: names, kept keys undone on failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from ca.profiles import SubjectKind
from ca.subjects import SubjectIdentity
from eauth.errors import InvalidInput
from store.ca_store import SqlCaStore
from tests.helpers import citizen_id, credit_code, ec_csr


def _issue(platform, agency, profile_name, identity, **kwargs):
    with platform.db.session() as session:
        return platform.ca.issue(SqlCaStore(session), profile_name=profile_name, subject=identity,
                                 requested_by=agency.id, **kwargs)


@pytest.mark.parametrize("name", ["", "   ", "a" * 65, "张\x00三", "张\u200b三", "bell\x07"])
def test_bad_names_refused(platform, agency, name):
    with pytest.raises(InvalidInput):
        _issue(platform, agency, "citizen", SubjectIdentity(SubjectKind.PERSON, name, citizen_id()), csr=ec_csr()[0])


def test_long_chinese_name_whole_in_o_and_cut_in_cn(platform, agency):
    name = "深圳市前海深港现代服务业合作区管理局综合服务中心"  # 24 characters, 72 UTF-8 bytes
    issued = _issue(platform, agency, "enterprise", SubjectIdentity(SubjectKind.ENTERPRISE, name, credit_code()),
                    csr=ec_csr()[0])
    subject = issued.record.certificate.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == name
    common_name = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert name.startswith(common_name) and len(common_name.encode()) <= 64 and len(common_name) == 21


def test_platform_key_removed_when_issuance_fails(platform, agency, monkeypatch):
    keys_dir = Path(platform.settings.data_dir) / "keys"
    before = set(keys_dir.iterdir())

    def failing_insert(self, record):
        raise RuntimeError("database went away")

    monkeypatch.setattr(SqlCaStore, "add_certificate", failing_insert)
    with pytest.raises(RuntimeError):
        _issue(platform, agency, "agency-seal", SubjectIdentity(SubjectKind.AGENCY, "某市人民政府", credit_code()))
    assert set(keys_dir.iterdir()) == before
