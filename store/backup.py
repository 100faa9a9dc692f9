"""Backup and restore (容灾备份): the whole platform state in one archive file.

The archive is a gzip-compressed tar holding

- ``db/<table>.jsonl``: every row of every table (reflected from the database, so tables added by new
  features are included without a list to maintain), one JSON array a line, bytes/datetimes/dates
  typed (``{"b": base64}``, ``{"t": ISO 8601 UTC}``, ``{"d": ISO date}``): a logical dump, so a backup
  of SQLite restores into PostgreSQL and back;
- ``documents/ab/cd/<sha256>``: the blob store (issued PDFs, seal images);
- ``keys/<file>``: the encrypted key store files as they are (never the passphrase);
- ``config.json``: the non-secret settings;
- ``manifest.json`` (last): format, creation time, source platform, schema revisions (one per
  Alembic branch), columns and row count of each table, SHA-256 and size of every other member.

The database is read in one snapshot (SQLite: one deferred read transaction, WAL lets writers go on;
PostgreSQL: REPEATABLE READ READ ONLY), so a backup of a running instance is consistent. Blobs are
content-addressed and immutable: they are copied after the snapshot, each hash checked, and every
blob the snapshot refers to must be among them. The archive is written to a temporary file, synced,
then linked to its name: a failed backup leaves no partial file.

A restore checks every member against the manifest before it changes anything, builds the data dir
beside the target and renames it into place, and creates the schema at the backup's revisions in an
empty database; on any failure it removes what it made.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, Table, create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from eauth.errors import BackupFailed, BackupInvalid, NotInitialized, RestoreTargetNotEmpty
from store.blobs import BLOB_COLUMNS  # every blob they name must be in the backup
from store.db import DatabaseUnavailable

FORMAT, VERSION = "eauth-backup", 1
_MIGRATIONS = Path(__file__).with_name("migrations")
_BLOB_NAME = re.compile(r"^documents/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})$")
_MEMBER = re.compile(r"^(manifest\.json|config\.json|db/[a-z0-9_]+\.jsonl|keys/[a-z0-9_-][a-z0-9._-]*)$")
_BATCH = 500


@dataclass(frozen=True)
class BackupSummary:
    """What a backup holds."""

    path: Path
    tables: int
    rows: int
    documents: int
    key_files: int
    size: int


@dataclass(frozen=True)
class RestoreSummary:
    """What a restore put back, and the settings of the source platform (``config.json``)."""

    tables: int
    rows: int
    documents: int
    key_files: int
    revisions: tuple[str, ...]
    config: Mapping[str, Any]


# -- values ----------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, memoryview)):
        return {"b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):  # every timestamp is UTC (store.models.UtcDateTime); SQLite drops the zone
        aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return {"t": aware.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    raise BackupFailed(f"cannot back up a value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        ((kind, raw),) = value.items()
        return {"b": base64.b64decode, "t": datetime.fromisoformat, "d": date.fromisoformat}[kind](raw)
    return value


# -- backup ----------------------------------------------------------------------------------------


def _snapshot_engine(url: str) -> Engine:
    """An engine whose transactions are one snapshot: pysqlite would begin none for SELECTs."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection) -> None:
            connection.exec_driver_sql("BEGIN")
    return engine


def _snapshot(engine: Engine) -> Connection:
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return connection


class _Archive:
    """The tar being written, with the SHA-256 and size of every member for the manifest."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=fileobj, mode="w:gz", compresslevel=6)
        self.members: dict[str, dict[str, Any]] = {}

    def add_file(self, name: str, path: Path, *, expect_sha256: str | None = None) -> None:
        digest = hashlib.sha256()
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o600, 0
            self.tar.addfile(info, _Hashing(source, digest))
        if expect_sha256 is not None and digest.hexdigest() != expect_sha256:
            raise BackupFailed(f"document {expect_sha256} in the blob store is corrupt (its content has another hash)")
        self.members[name] = {"sha256": digest.hexdigest(), "size": size}

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o600, 0
        self.tar.addfile(info, _Hashing(_BytesReader(data), hashlib.sha256()))
        self.members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        chunk, self._at = self._data[self._at:end], min(end, len(self._data))
        return chunk


class _Hashing:
    """A file-like reader that hashes what is read (tarfile reads each member once)."""

    def __init__(self, source, digest) -> None:
        self._source, self._digest = source, digest

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self._digest.update(chunk)
        return chunk


def _dump_tables(connection: Connection, directory: Path) -> tuple[dict[str, Any], set[str], list[str]]:
    """Every table to ``directory/<table>.jsonl`` in one snapshot: (tables, referenced blobs, revisions)."""
    revisions = sorted(MigrationContext.configure(connection).get_current_heads())
    if not revisions:
        raise NotInitialized("the database has no eauth schema (run `eauth init`)")
    metadata = MetaData()
    metadata.reflect(connection)
    tables: dict[str, Any] = {}
    referenced: set[str] = set()
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        columns = [c.name for c in table.columns]
        blob_columns = [columns.index(c) for c in BLOB_COLUMNS.get(table.name, ())]
        order = list(table.primary_key.columns) or list(table.columns)
        rows = 0
        with open(directory / f"{table.name}.jsonl", "w", encoding="utf-8") as out:
            for row in connection.execution_options(yield_per=1000).execute(select(table).order_by(*order)):
                out.write(json.dumps([_encode(v) for v in row], ensure_ascii=False, separators=(",", ":")) + "\n")
                referenced.update(row[i] for i in blob_columns if row[i] is not None)
                rows += 1
        tables[table.name] = {"columns": columns, "rows": rows}
    return tables, referenced, revisions


def _blob_files(root: Path) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        return
    for path in sorted(root.glob("??/??/*")):
        name = f"documents/{path.relative_to(root).as_posix()}"
        if path.is_file() and _BLOB_NAME.match(name):  # not the temporary files of a write in progress
            yield path.name, path


def create_backup(target: Path, *, database_url: str, data_dir: Path, config: Mapping[str, Any]) -> BackupSummary:
    """Write the backup of the platform at ``database_url`` / ``data_dir`` to ``target`` (never overwritten)."""
    target = Path(target)
    if target.exists():
        raise BackupFailed(f"{target} already exists; not overwriting it")
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        raise NotInitialized(f"no database at {url.database} (run `eauth init`)")
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    engine = _snapshot_engine(database_url)
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        engine.dispose()
        raise BackupFailed(f"cannot write the backup to {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file, _scratch(target.parent) as scratch:
            archive = _Archive(file)
            with _snapshot(engine) as connection, connection.begin():
                tables, referenced, revisions = _dump_tables(connection, scratch)
            for name in tables:
                archive.add_file(f"db/{name}.jsonl", scratch / f"{name}.jsonl")
            documents = 0
            for key, path in _blob_files(Path(data_dir) / "documents"):
                archive.add_file(f"documents/{key[:2]}/{key[2:4]}/{key}", path, expect_sha256=key)
                referenced.discard(key)
                documents += 1
            if referenced:
                raise BackupFailed(f"the database refers to document {sorted(referenced)[0]} that is not in the "
                                   f"blob store ({len(referenced)} missing)")
            keys = sorted(p for p in (Path(data_dir) / "keys").glob("*")
                          if p.is_file() and _MEMBER.match(f"keys/{p.name}"))
            for path in keys:
                archive.add_file(f"keys/{path.name}", path)
            archive.add_bytes("config.json", json.dumps(dict(config), indent=1, sort_keys=True).encode())
            manifest = {
                "format": FORMAT, "version": VERSION, "created_at": datetime.now(timezone.utc).isoformat(),
                "platform": {"name": config.get("platform_name"), "public_base_url": config.get("public_base_url")},
                "database": {"dialect": engine.dialect.name, "revisions": revisions, "tables": tables},
                "members": archive.members,
            }
            archive.add_bytes("manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
            archive.tar.close()
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, target)
        except FileExistsError:
            raise BackupFailed(f"{target} already exists; not overwriting it") from None
        except OSError as exc:
            raise BackupFailed(f"cannot write the backup to {target}: {exc.strerror}") from None
        _sync_directory(target.parent)
    except OSError as exc:
        raise BackupFailed(f"cannot write the backup to {target}: {exc.strerror or exc}") from None
    except OperationalError as exc:
        raise DatabaseUnavailable(f"database error: {str(exc.orig).strip().splitlines()[0]}") from None
    finally:
        temporary.unlink(missing_ok=True)
        engine.dispose()
    return BackupSummary(path=target, tables=len(tables), rows=sum(t["rows"] for t in tables.values()),
                         documents=documents, key_files=len(keys), size=target.stat().st_size)


class _scratch:
    """A private temporary directory (the table dumps), removed afterwards."""

    def __init__(self, parent: Path) -> None:
        self.path = parent / f".eauth-backup-{secrets.token_hex(6)}"

    def __enter__(self) -> Path:
        self.path.mkdir(mode=0o700)
        return self.path

    def __exit__(self, *_exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- restore ---------------------------------------------------------------------------------------


def _extract(archive: Path, staging: Path) -> dict[str, Any]:
    """Every member into ``staging`` (db dumps under ``.db``), checked against the manifest."""
    seen: dict[str, dict[str, Any]] = {}
    manifest = None
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                name = member.name
                if not member.isfile() or name in seen or not (_MEMBER.match(name) or _BLOB_NAME.match(name)):
                    raise BackupInvalid(f"{archive} holds an unexpected member {name[:100]!r}")
                source = tar.extractfile(member)
                if name == "manifest.json":
                    data = source.read()
                    manifest = data
                    seen[name] = {}
                    continue
                path = staging / (".db/" + name[3:] if name.startswith("db/") else name)
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest = hashlib.sha256()
                with open(path, "xb", opener=lambda p, flags: os.open(p, flags, 0o600)) as out:
                    while chunk := source.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                seen[name] = {"sha256": digest.hexdigest(), "size": member.size}
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BackupInvalid(f"{archive} is truncated or corrupt: {exc}") from None
    except FileNotFoundError:
        raise BackupInvalid(f"no backup file {archive}") from None
    if manifest is None:
        raise BackupInvalid(f"{archive} has no manifest: truncated, or not an eauth backup")
    try:
        manifest = json.loads(manifest)
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise BackupInvalid(f"{archive} is not an {FORMAT} version {VERSION} archive")
        expected = manifest["members"]
        tables = manifest["database"]["tables"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BackupInvalid(f"{archive} has an unreadable manifest") from None
    seen.pop("manifest.json")
    for name, entry in expected.items():
        if name not in seen:
            raise BackupInvalid(f"{archive} lacks {name}, listed in its manifest")
        if seen[name]["sha256"] != entry.get("sha256") or seen[name]["size"] != entry.get("size"):
            raise BackupInvalid(f"{name} in {archive} was altered: its SHA-256 differs from the manifest")
    if extra := sorted(set(seen) - set(expected)):
        raise BackupInvalid(f"{archive} holds {extra[0]}, not listed in its manifest")
    for name in seen:
        blob = _BLOB_NAME.match(name)
        if blob and seen[name]["sha256"] != blob.group(3):
            raise BackupInvalid(f"{name} in {archive} is not the document its name says")
    if set(tables) != {name[3:-6] for name in seen if name.startswith("db/")}:
        raise BackupInvalid(f"{archive}: the tables in its manifest and its members differ")
    return manifest


def _upgrade_to(engine: Engine, revisions: list[str]) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["engine"] = engine
    scripts = ScriptDirectory.from_config(config)
    for revision in revisions:
        try:
            scripts.get_revision(revision)
        except CommandError:
            raise BackupInvalid(f"the backup's schema revision {revision!r} is unknown to this eauth version "
                                "(made by a newer one?)") from None
    for revision in revisions:
        command.upgrade(config, revision)


def _rows(path: Path) -> Iterator[list[Any]]:
    with open(path, encoding="utf-8") as source:
        for line in source:
            yield [_decode(v) for v in json.loads(line)]


def _load_table(connection: Connection, table: Table, columns: list[str], path: Path) -> None:
    """Insert the dumped rows; self-references (a renewal's ``replaces``) are set afterwards, when every
    row they may point to is in."""
    missing = set(columns) ^ {c.name for c in table.columns}
    if missing:
        raise BackupInvalid(f"table {table.name}: the backup's columns differ from the schema ({sorted(missing)})")
    deferred = [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]
    key = [c.name for c in table.primary_key.columns]
    batch, later = [], []
    for values in _rows(path):
        row = dict(zip(columns, values))
        if deferred and any(row[c] is not None for c in deferred):
            later.append(({k: row[k] for k in key}, {c: row[c] for c in deferred}))
            row = row | {c: None for c in deferred}
        batch.append(row)
        if len(batch) >= _BATCH:
            connection.execute(table.insert(), batch)
            batch = []
    if batch:
        connection.execute(table.insert(), batch)
    for where, values in later:
        connection.execute(update(table).where(*(table.c[k] == v for k, v in where.items())).values(values))


def _reset_sequences(connection: Connection, table: Table) -> None:
    """PostgreSQL: the next generated id follows the restored ones."""
    for column in table.primary_key.columns:
        sequence = connection.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                     {"t": table.name, "c": column.name})
        if sequence is not None:
            top = connection.scalar(select(func.max(column)))
            connection.execute(text("SELECT setval(:s, :v, :called)"),
                               {"s": sequence, "v": top or 1, "called": top is not None})


def _database_tables(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return inspect(connection).get_table_names()


def _drop_everything(engine: Engine) -> None:
    metadata = MetaData()
    with engine.begin() as connection:
        metadata.reflect(connection)
        metadata.drop_all(connection)


def restore_backup(
    archive: Path, *, database_url: str, data_dir: Path, check_keys: Callable[[Path], None],
) -> RestoreSummary:
    """Restore ``archive`` into the empty ``data_dir`` and the empty database at ``database_url``.

    ``check_keys(directory)`` opens the restored key store (refusing a wrong passphrase) before the
    database is touched. Nothing is left behind on failure."""
    data_dir = Path(data_dir).absolute()
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreTargetNotEmpty(f"the data dir {data_dir} is not empty: restore into an empty one")
    url = make_url(database_url)
    sqlite_file = Path(url.database).absolute() if url.get_backend_name() == "sqlite" and url.database else None
    staging = data_dir.with_name(f".{data_dir.name}.restore-{secrets.token_hex(6)}")
    inside = sqlite_file is not None and sqlite_file.is_relative_to(data_dir)
    if inside:  # the default SQLite file: made in the staging dir, moved with it
        url = url.set(database=str(staging / sqlite_file.relative_to(data_dir)))
    elif sqlite_file is not None and sqlite_file.exists() and sqlite_file.stat().st_size:
        raise RestoreTargetNotEmpty(f"the database file {sqlite_file} exists: restore into a new one")
    engine = create_engine(url)
    made_database = False

    def _undo() -> None:
        engine.dispose()
        if made_database and not inside:
            if sqlite_file is None:
                _drop_everything(engine)
            else:
                sqlite_file.unlink(missing_ok=True)
            engine.dispose()
        shutil.rmtree(staging, ignore_errors=True)

    try:
        if not inside and _database_tables(engine):
            raise RestoreTargetNotEmpty("the database has tables already: restore into an empty database")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir(mode=0o700)
        manifest = _extract(Path(archive), staging)
        if (staging / "keys").is_dir():
            check_keys(staging / "keys")
        database = manifest["database"]
        made_database = True
        _upgrade_to(engine, database["revisions"])
        metadata = MetaData()
        with engine.begin() as connection:
            metadata.reflect(connection)
            known = set(metadata.tables) - {"alembic_version"}
            if known != set(database["tables"]):
                raise BackupInvalid("the backup's tables differ from the schema at its revisions")
            for table in reversed(metadata.sorted_tables):  # rows a migration seeded: the backup has them
                if table.name in known:
                    connection.execute(table.delete())
            for table in metadata.sorted_tables:
                if table.name in known:
                    entry = database["tables"][table.name]
                    _load_table(connection, table, entry["columns"], staging / ".db" / f"{table.name}.jsonl")
            for table in metadata.sorted_tables:
                count = connection.scalar(select(func.count()).select_from(table))
                if table.name in known and count != database["tables"][table.name]["rows"]:
                    raise BackupInvalid(f"table {table.name}: {count} rows restored, the manifest says "
                                        f"{database['tables'][table.name]['rows']}")
                if engine.dialect.name == "postgresql":
                    _reset_sequences(connection, table)
        engine.dispose()
        shutil.rmtree(staging / ".db")
        config = json.loads((staging / "config.json").read_text(encoding="utf-8"))
        (staging / "config.json").rename(staging / "config-from-backup.json")
        os.sync()
        if data_dir.exists():
            data_dir.rmdir()
        staging.rename(data_dir)
    except OperationalError as exc:
        _undo()
        raise DatabaseUnavailable(f"database error: {str(exc.orig).strip().splitlines()[0]}") from None
    except (IntegrityError, DataError, StatementError) as exc:
        _undo()
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise BackupInvalid(f"the backup's rows do not fit the schema: {detail}") from None
    except BaseException:
        _undo()
        raise
    members = manifest["members"]
    return RestoreSummary(
        tables=len(database["tables"]), rows=sum(t["rows"] for t in database["tables"].values()),
        documents=sum(1 for n in members if n.startswith("documents/")),
        key_files=sum(1 for n in members if n.startswith("keys/")),
        revisions=tuple(database["revisions"]), config=config,
    )
