"""Login challenges and login-token keys (``store.models.LoginChallenge``, ``LoginKey``): everything a
login needs that must be shared by every API process lives here, not in a process's memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store.models import LoginChallenge, LoginKey

_CHALLENGES = LoginChallenge.__table__
_KEYS = LoginKey.__table__


@dataclass(frozen=True, slots=True)
class LoginKeyRecord:
    kid: str
    label: str
    created_at: datetime
    retired_at: datetime | None
    not_after: datetime | None


def add_challenge(connection: Connection | Session, *, nonce: str, audience: str, created_at: datetime,
                  expires_at: datetime) -> None:
    """Store a new challenge, and drop those that expired (none of them can be used any more)."""
    connection.execute(delete(_CHALLENGES).where(_CHALLENGES.c.expires_at < created_at))
    connection.execute(insert(_CHALLENGES), {"nonce": nonce, "audience": audience, "created_at": created_at,
                                             "expires_at": expires_at, "used_at": None})


def consume_challenge(connection: Connection | Session, *, nonce: str, audience: str | None,
                      now: datetime) -> str | None:
    """Mark the challenge used and return its audience; only for the one caller that found it unused,
    unexpired and (when ``audience`` is given) for ``audience``, None for any other (a single UPDATE:
    two concurrent logins with one nonce cannot both succeed)."""
    condition = [_CHALLENGES.c.nonce == nonce, _CHALLENGES.c.used_at.is_(None), _CHALLENGES.c.expires_at > now]
    if audience is not None:
        condition.append(_CHALLENGES.c.audience == audience)
    if connection.execute(update(_CHALLENGES).where(*condition).values(used_at=now)).rowcount != 1:
        return None
    return connection.execute(select(_CHALLENGES.c.audience).where(_CHALLENGES.c.nonce == nonce)).scalar_one()


def login_keys(connection: Connection | Session, *, now: datetime) -> list[LoginKeyRecord]:
    """The keys still published at ``now`` (current, or retired with tokens that may be unexpired),
    newest first: the first unretired one signs."""
    query = (select(_KEYS).where(or_(_KEYS.c.not_after.is_(None), _KEYS.c.not_after > now))
             .order_by(_KEYS.c.created_at.desc(), _KEYS.c.label.desc()))
    return [LoginKeyRecord(**{f: getattr(row, f) for f in LoginKeyRecord.__slots__})
            for row in connection.execute(query)]


def all_login_key_labels(connection: Connection | Session) -> list[str]:
    """Every login key's label, published or not (to number a new one)."""
    return list(connection.execute(select(_KEYS.c.label)).scalars())


def add_login_key(connection: Connection | Session, record: LoginKeyRecord) -> None:
    connection.execute(insert(_KEYS), {f: getattr(record, f) for f in LoginKeyRecord.__slots__})


def retire_login_keys(connection: Connection | Session, *, except_kid: str, at: datetime, not_after: datetime) -> int:
    """Retire every unretired key but ``except_kid``: published until ``not_after``. How many."""
    result = connection.execute(
        update(_KEYS).where(_KEYS.c.retired_at.is_(None), _KEYS.c.kid != except_kid)
        .values(retired_at=at, not_after=not_after)
    )
    return result.rowcount
