"""Documents addressed by their SHA-256 (``licenses.records.BlobStore``): a directory under the data dir.

A province holds tens of millions of ~30 KB licenses: terabytes that belong in files or an object
store, not in database rows; the database keeps only the hash and size. Files go to
``<root>/ab/cd/<sha256>``; each is written to a temporary name, flushed to disk and renamed, so a
crash leaves either the whole document or none (and at most a temporary file, never read). An
object store (S3-compatible) needs the same three calls.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from eauth.errors import InvalidInput, NotFound, StorageFull

_KEY = re.compile(r"^[0-9a-f]{64}$")


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
            if exc.errno == 28:  # ENOSPC
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
