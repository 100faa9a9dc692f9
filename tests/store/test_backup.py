"""store.backup: a restored database holds exactly the rows of the backup (also into the other dialect),
self-references and typed values survive, and a blob store that does not match the database refuses
the backup with no file left."""

from __future__ import annotations

import os
import shutil
import tarfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from ca.records import Actor
from eauth.errors import BackupFailed, BackupInvalid
from store.backup import _decode, _dump_tables, _encode, _snapshot, _snapshot_engine, create_backup, restore_backup
from store.ca_store import SqlCaStore
from tests.api.test_ocsp_http import issue as issue_certificate
from tests.conftest import fresh_database, fresh_postgres_database, require_seal_font
from tests.licenses.test_issuance import driver


@pytest.mark.parametrize("value", [None, True, 7, 2**40, "证照 [x]", b"\x00\xff", date(2026, 12, 2),
                                   datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=timezone.utc)])
def test_values_round_trip(value):
    assert _decode(_encode(value)) == value


def test_a_datetime_is_kept_as_utc():
    east = datetime(2026, 12, 2, 18, 0, tzinfo=timezone(timedelta(hours=8)))
    assert _decode(_encode(east)) == east and _decode(_encode(east)).utcoffset() == timedelta(0)
    assert _decode(_encode(datetime(2026, 12, 2, 10, 0))).tzinfo is timezone.utc  # SQLite's naive UTC


@pytest.fixture(scope="module")
def archive(platform, api, licensing, agency, tmp_path_factory) -> Path:
    """A backup of the test platform with a license and a renewed certificate (a self-reference)."""
    require_seal_font()
    response = api.post("/api/v1/licenses", json={"type_code": licensing.driving.code, "fields": driver()},
                        headers=licensing.headers)
    assert response.status_code == 201, response.text
    with platform.db.session() as session:
        platform.ca.renew(SqlCaStore(session), issue_certificate(platform, agency).serial, actor=Actor(None))
    path = tmp_path_factory.mktemp("archive") / "backup.tar.gz"
    create_backup(path, database_url=platform.settings.resolved_database_url,
                  data_dir=Path(platform.settings.data_dir), config={"platform_name": "test"})
    return path


def _dumped(database_url: str, directory: Path) -> dict[str, bytes]:
    directory.mkdir()
    engine = _snapshot_engine(database_url)
    try:
        with _snapshot(engine) as connection, connection.begin():
            _dump_tables(connection, directory)
    finally:
        engine.dispose()
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _restore_and_compare(archive: Path, database_url: str, tmp_path: Path) -> None:
    summary = restore_backup(archive, database_url=database_url, data_dir=tmp_path / "var", check_keys=lambda d: None)
    assert summary.rows > 0 and summary.documents > 0 and summary.config == {"platform_name": "test"}
    with tarfile.open(archive) as tar:
        backed_up = {m.name[3:]: tar.extractfile(m).read() for m in tar if m.name.startswith("db/")}
    assert _dumped(database_url, tmp_path / "dump") == backed_up
    kept = {p.relative_to(tmp_path / "var").as_posix() for p in (tmp_path / "var").rglob("*") if p.is_file()}
    with tarfile.open(archive) as tar:
        members = {m.name for m in tar if m.name.startswith(("documents/", "keys/"))}
    assert members <= kept


def test_restore_gives_back_every_row(archive, tmp_path):
    for database_url in fresh_database(tmp_path):
        _restore_and_compare(archive, database_url, tmp_path)


def test_restore_into_the_other_dialect(archive, platform, tmp_path):
    """PostgreSQL → SQLite (in the PostgreSQL run), SQLite → PostgreSQL (when a server is given)."""
    server = os.environ.get("EAUTH_TEST_DATABASE_URL")
    if platform.db.engine.dialect.name == "postgresql":
        _restore_and_compare(archive, f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    elif server:
        for database_url in fresh_postgres_database(server):
            _restore_and_compare(archive, database_url, tmp_path)
    else:
        pytest.skip("no PostgreSQL server (EAUTH_TEST_DATABASE_URL) to restore a SQLite backup into")


def _copy_without_documents(platform, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(Path(platform.settings.data_dir) / "keys", copy / "keys")
    return copy


def test_a_missing_document_refuses_the_backup(archive, platform, tmp_path):
    data_dir = _copy_without_documents(platform, tmp_path)
    with pytest.raises(BackupFailed, match="refers to document"):
        create_backup(tmp_path / "b.tar.gz", database_url=platform.settings.resolved_database_url,
                      data_dir=data_dir, config={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_corrupt_document_refuses_the_backup(archive, platform, tmp_path):
    data_dir = _copy_without_documents(platform, tmp_path)
    shutil.copytree(Path(platform.settings.data_dir) / "documents", data_dir / "documents")
    victim = next(p for p in (data_dir / "documents").rglob("*") if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"%")
    with pytest.raises(BackupFailed, match="corrupt"):
        create_backup(tmp_path / "b.tar.gz", database_url=platform.settings.resolved_database_url,
                      data_dir=data_dir, config={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_member_not_in_the_manifest_is_refused(archive, tmp_path):
    extended = tmp_path / "extended.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(extended, "w:gz") as copy:
        for member in source:
            copy.addfile(member, source.extractfile(member))
        extra = tmp_path / "extra"
        extra.write_bytes(b"smuggled")
        copy.add(extra, arcname="keys/smuggled.key.pem")
    for database_url in fresh_database(tmp_path):
        with pytest.raises(BackupInvalid, match="not listed in its manifest"):
            restore_backup(extended, database_url=database_url, data_dir=tmp_path / "var", check_keys=lambda d: None)
        assert not (tmp_path / "var").exists()
        engine = create_engine(database_url)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()
