"""Rate-limit budgets shared by every process through the database (``rate_limit_windows``).

A process does not ask the database per request: it reserves a lease of several requests of a client's
budget for the current window in one atomic upsert, spends it locally, and reserves again when it runs
out. The database total never exceeds the limit; what a client gets admitted in a window is at most
the limit, and the unspent part of leases (at most one lease per process) is simply lost at the
window's end.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from store.models import RateLimitWindow

_TABLE = RateLimitWindow.__table__


def _upsert(dialect: str):
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(_TABLE)
    return insert.on_conflict_do_update(
        index_elements=[_TABLE.c.client, _TABLE.c.window],
        set_={"admitted": _TABLE.c.admitted + insert.excluded.admitted},
    ).returning(_TABLE.c.admitted)


_UPSERTS = {"postgresql": _upsert("postgresql"), "sqlite": _upsert("sqlite")}


def reserve(connection: Connection, *, client: str, window: int, wanted: int, limit: int) -> int:
    """Reserve up to ``wanted`` requests of ``client``'s ``limit`` in ``window``; how many were granted
    (0 when the budget is spent). The reservation counts in full even when only part is granted, so
    the stored total may pass the limit, but what is granted never does."""
    total = connection.execute(_UPSERTS[connection.dialect.name],
                               {"client": client[:120], "window": window, "admitted": wanted}).scalar_one()
    before = total - wanted
    return max(0, min(wanted, limit - before))


def purge(connection: Connection, *, before: int) -> int:
    """Delete the windows that started before ``before``; how many."""
    return connection.execute(delete(_TABLE).where(_TABLE.c.window < before)).rowcount
