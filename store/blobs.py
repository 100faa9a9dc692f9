"""Documents addressed by their SHA-256 (``licenses.records.BlobStore``): a directory under the data dir.

A province holds tens of millions of ~30 KB licenses: terabytes that belong in files or an object
store, not in database rows; the database keeps only the hash and size. Files go to
``<root>/ab/cd/<sha256>``; each is written to a temporary name, flushed to disk and renamed, so a
crash leaves either the whole document or none (and at most a temporary file, never read). A full
disk (or quota) is StorageFull, with the temporary file removed. An object store (S3-compatible) needs
the same three calls.

Blobs are written before the database record that names them (a record never exists without its
blob): a process killed in between leaves a blob no record names, harmless (never served: every read
goes through a record) and found by ``unreferenced`` (see docs/resilience.md).
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
import re
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Connection

from eauth.errors import InvalidInput, NotFound, StorageFull
from store.models import Base

_KEY = re.compile(r"^[0-9a-f]{64}$")
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class FileBlobStore:
    """Blobs as files in ``root`` (made on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise InvalidInput(f"not a document key (SHA-256 hex): {key[:80]!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        temporary = path.with_name(f".{key}.{secrets.token_hex(4)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            if exc.errno in _FULL:
                raise StorageFull(f"no space left for documents in {self.root}") from None
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no document {key}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def unreferenced(self, referenced: Iterable[str], *, older_than_seconds: float) -> Iterator[Path]:
        """Files no record names: blobs not in ``referenced`` and the temporary files of interrupted
        writes, last modified more than ``older_than_seconds`` ago (younger ones may belong to an
        issuance still in flight, whose record is not committed yet)."""
        keep = set(referenced)
        cutoff = time.time() - older_than_seconds
        for path in sorted(self.root.glob("??/??/*")):
            if path.name in keep or not path.is_file():
                continue
            if path.stat().st_mtime < cutoff and (_KEY.match(path.name) or path.name.endswith(".tmp")):
                yield path


#: Columns holding blob-store keys (the backup takes every blob they name, the sweep keeps them).
BLOB_COLUMNS = {"license_versions": ("pdf_sha256",), "agencies": ("seal_image_sha256",)}


def referenced_keys(connection: Connection) -> set[str]:
    """Every blob key a record names."""
    keys: set[str] = set()
    for table_name, columns in BLOB_COLUMNS.items():
        table = Base.metadata.tables[table_name]
        for column in columns:
            keys.update(connection.scalars(select(table.c[column]).where(table.c[column].is_not(None))))
    return keys
