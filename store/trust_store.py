"""Trusted platforms (互认): the trust bundles the operator imported, one row per platform, with the
audit entry of each import and removal in the same transaction. The rows are the truth every process
reads (``api.trust`` keeps a few seconds' copy); nothing about them lives only in a process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from eauth.errors import PlatformAlreadyTrusted, TrustedPlatformNotFound
from store import audit
from store.models import TrustedPlatform

_TABLE = TrustedPlatform.__table__


@dataclass(frozen=True, slots=True)
class TrustedPlatformRecord:
    """One imported platform: the operator's name for it, its id (SHA-256 of its root), its public
    base URL, the bundle as imported (JSON text) and when."""

    id: int
    name: str
    platform_id: str
    base_url: str | None
    bundle: str
    imported_at: datetime


def _record(row) -> TrustedPlatformRecord:
    return TrustedPlatformRecord(id=row.id, name=row.name, platform_id=row.platform_id, base_url=row.base_url,
                                 bundle=row.bundle, imported_at=row.imported_at)


def trusted_platforms(connection: Connection) -> list[TrustedPlatformRecord]:
    """Every imported platform, oldest import first."""
    rows = connection.execute(select(_TABLE).order_by(_TABLE.c.imported_at, _TABLE.c.id))
    return [_record(row) for row in rows]


def add_trusted_platform(connection: Connection, *, name: str, platform_id: str, base_url: str | None,
                         bundle: str, imported_at: datetime, actor: str) -> TrustedPlatformRecord:
    """Record an import (and its ``trust.import`` audit entry); PlatformAlreadyTrusted when the name or
    the root is already there (checked first for a clear message, and by the unique constraints for
    two imports at once)."""
    clash = connection.execute(select(_TABLE.c.name, _TABLE.c.platform_id).where(
        (_TABLE.c.name == name) | (_TABLE.c.platform_id == platform_id))).first()
    if clash is not None:
        what = f"the name {name!r}" if clash.name == name else f"its root (as {clash.name!r})"
        raise PlatformAlreadyTrusted(f"a trusted platform already has {what}: remove it first to replace it")
    values = dict(name=name, platform_id=platform_id, base_url=base_url, bundle=bundle, imported_at=imported_at)
    try:
        with connection.begin_nested():
            new_id = connection.execute(insert(_TABLE).values(**values).returning(_TABLE.c.id)).scalar_one()
    except IntegrityError:
        raise PlatformAlreadyTrusted(f"a trusted platform named {name!r} or with this root was just imported") from None
    audit.record(connection, actor=actor, action="trust.import", subject=f"platform:{platform_id}",
                 details={"name": name, "base_url": base_url})
    return TrustedPlatformRecord(id=new_id, **values)


def remove_trusted_platform(connection: Connection, name: str, *, actor: str) -> TrustedPlatformRecord:
    """Delete the import named ``name`` (and record ``trust.remove``); TrustedPlatformNotFound if none."""
    row = connection.execute(select(_TABLE).where(_TABLE.c.name == name)).first()
    if row is None:
        raise TrustedPlatformNotFound(f"no trusted platform named {name!r}")
    connection.execute(delete(_TABLE).where(_TABLE.c.id == row.id))
    audit.record(connection, actor=actor, action="trust.remove", subject=f"platform:{row.platform_id}",
                 details={"name": row.name, "base_url": row.base_url})
    return _record(row)
