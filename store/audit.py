"""The tamper-evident audit trail: an append-only hash chain with signed checkpoints.

Entry ``n`` holds ``prev_hash`` = the hash of entry ``n-1`` (``GENESIS`` for entry 1) and ``hash`` =
SHA-256 over the canonical encoding (``entry_bytes``) of seq, at, actor, action, subject, details and
prev_hash. An entry is appended in the caller's transaction, so a change and its entry commit or roll
back together. Appends are serialized by the one ``audit_head`` row, which each append updates first:
its row lock (PostgreSQL) or the database write lock (SQLite) is held until the caller commits, so
concurrent writers in any number of processes queue, and the chain never forks nor repeats a seq.

A checkpoint signs (ES256, the platform key ``CHECKPOINT_KEY_LABEL``) the seq and hash of the last
entry at a moment: rewriting the chain up to it (every hash recomputed) or cutting its tail off is then
detected by ``verify_chain``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from store.models import AuditCheckpoint, AuditEntry, AuditHead

GENESIS = "0" * 64
CHECKPOINT_KEY_LABEL = "audit-checkpoint"

_LOG = AuditEntry.__table__
_HEAD = AuditHead.__table__
_CHECKPOINTS = AuditCheckpoint.__table__

# Prepared once: the hot path is these three small statements.
_ADVANCE = (update(_HEAD).where(_HEAD.c.id == 1).values(seq=_HEAD.c.seq + bindparam("count"))
            .returning(_HEAD.c.seq, _HEAD.c.hash))
_APPEND = insert(_LOG)
_SET_HEAD_HASH = update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("head_hash"))
_ACTOR, _ACTION, _SUBJECT = (_LOG.c[name].type.length for name in ("actor", "action", "subject"))


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"audit details: {type(value).__name__} is not JSON")


def canonical_json(value: object) -> str:
    """Sorted keys, no spaces, UTF-8 as is: one text per value, so the hash is reproducible."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _timestamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_bytes(*, seq: int, at: datetime, actor: str, action: str, subject: str | None, details: str,
                prev_hash: str) -> bytes:
    """The canonical encoding an entry's hash is taken over (``details`` already canonical JSON)."""
    return canonical_json(["eauth-audit-v1", seq, _timestamp(at), actor, action, subject, details,
                           prev_hash]).encode()


def entry_hash(**fields) -> str:
    """SHA-256 (hex) of ``entry_bytes(**fields)``."""
    return hashlib.sha256(entry_bytes(**fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing to append: who (``client:<id>``, ``operator``, ``holder:<subject>``…), what (dotted,
    ``license.issue``), what it was done to, and details (JSON-able)."""

    actor: str
    action: str
    subject: str | None
    details: dict | None = None


def record(connection: Connection | Session, *, actor: str, action: str, subject: str | None,
           details: dict | None = None) -> None:
    """Append one entry in the caller's transaction (best called last in it: the chain is held from
    here until the commit)."""
    record_many(connection, [AuditEvent(actor, action, subject, details)])


def record_many(connection: Connection | Session, events: Sequence[AuditEvent]) -> None:
    """Append entries in order, in the caller's transaction, with one advance of the head (what a
    batch of verification records costs: three statements, not three per entry). Values longer than
    their columns are cut (before hashing): an entry never makes the change it records fail."""
    if not events:
        return
    at = datetime.now(timezone.utc)
    last, prev_hash = connection.execute(_ADVANCE, {"count": len(events)}).one()
    rows = []
    for seq, event in enumerate(events, start=last - len(events) + 1):
        fields = {"seq": seq, "at": at, "actor": event.actor[:_ACTOR], "action": event.action[:_ACTION],
                  "subject": event.subject[:_SUBJECT] if event.subject else event.subject,
                  "details": canonical_json(event.details or {}), "prev_hash": prev_hash}
        prev_hash = entry_hash(**fields)
        rows.append(fields | {"hash": prev_hash})
    connection.execute(_APPEND, rows)
    connection.execute(_SET_HEAD_HASH, {"head_hash": prev_hash})


# -- checkpoints -----------------------------------------------------------------------------------

_LAST_ENTRY = select(_LOG.c.seq, _LOG.c.hash).order_by(_LOG.c.seq.desc()).limit(1)
_LAST_CHECKPOINT = select(_CHECKPOINTS.c.seq).order_by(_CHECKPOINTS.c.seq.desc()).limit(1)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: bytes


def checkpoint_bytes(*, seq: int, hash: str, at: datetime) -> bytes:
    """What a checkpoint signature is over."""
    return canonical_json(["eauth-audit-checkpoint-v1", seq, hash, _timestamp(at)]).encode()


def add_checkpoint(connection: Connection | Session, *, sign: Callable[[bytes], bytes], key_id: str,
                   at: datetime | None = None) -> Checkpoint | None:
    """Sign the last committed entry (ECDSA P-256 / SHA-256, DER) unless it is checkpointed already or
    the log is empty; None then. Several processes checkpointing at once: one row per seq, the others
    find it there or fail on the primary key (IntegrityError: the caller's transaction is lost)."""
    last = connection.execute(_LAST_ENTRY).first()
    if last is None or connection.execute(_LAST_CHECKPOINT).scalar() == last.seq:
        return None
    at = at or datetime.now(timezone.utc)
    signature = sign(checkpoint_bytes(seq=last.seq, hash=last.hash, at=at))
    checkpoint = Checkpoint(last.seq, last.hash, at, key_id, signature)
    connection.execute(insert(_CHECKPOINTS), {"seq": checkpoint.seq, "hash": checkpoint.hash, "at": at,
                                              "key_id": key_id, "signature": checkpoint.signature})
    return checkpoint


# -- verification ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first thing wrong: at which seq, what kind (``missing``, ``altered``, ``link``, ``head``,
    ``checkpoint``, ``truncated``) and a sentence saying it."""

    seq: int
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    last_seq: int
    checkpoints: int
    last_checkpoint_seq: int | None
    problem: ChainProblem | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def _stream(connection: Connection | Session, query) -> Iterator:
    return connection.execute(query.execution_options(stream_results=True, yield_per=1000))


def verify_chain(connection: Connection | Session, *, verify_signature: Callable[[Checkpoint], bool]) -> ChainReport:
    """Walk the log in seq order (streamed: constant memory), recompute every hash and link, check each
    checkpoint's signature and that it names an entry with its hash, and that the head row agrees with
    the last entry. Stops at the first problem. ``verify_signature``: True if a checkpoint's signature
    is good (the caller knows the key).

    Safe while others append, without a snapshot across statements: the checkpoints are read first,
    then the head, then the entries up to the head's seq, each later read seeing at least what the
    earlier one did (a checkpoint never names an entry beyond the head, and every entry up to the
    head is committed with it)."""
    checkpoints = iter(connection.execute(select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.seq)).all())  # few
    head = connection.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)).first()
    head_seq = head.seq if head is not None else 0
    pending = next(checkpoints, None)
    checked = 0
    last_checkpoint: int | None = None
    expected, prev_hash = 1, GENESIS
    problem: ChainProblem | None = None

    def check_point(row) -> ChainProblem | None:
        if not verify_signature(Checkpoint(row.seq, row.hash, row.at, row.key_id, row.signature)):
            return ChainProblem(row.seq, "checkpoint", f"checkpoint at seq {row.seq}: the signature does not verify")
        return None

    for entry in _stream(connection, select(_LOG).where(_LOG.c.seq <= head_seq).order_by(_LOG.c.seq)):
        if entry.seq != expected:
            problem = ChainProblem(expected, "missing", f"entry {expected} is missing (the next entry is {entry.seq})")
            break
        if entry.prev_hash != prev_hash:
            problem = ChainProblem(entry.seq, "link", f"entry {entry.seq}: prev_hash does not match the hash of entry "
                                                      f"{entry.seq - 1} (an entry was altered, inserted or moved)")
            break
        digest = entry_hash(seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action,
                            subject=entry.subject, details=entry.details, prev_hash=entry.prev_hash)
        if digest != entry.hash:
            problem = ChainProblem(entry.seq, "altered", f"entry {entry.seq}: its content does not match its hash")
            break
        while pending is not None and pending.seq <= entry.seq:
            problem = check_point(pending)
            if problem is None and (pending.seq != entry.seq or pending.hash != entry.hash):
                problem = ChainProblem(pending.seq, "checkpoint", f"entry {pending.seq} differs from what the "
                                                                  f"checkpoint signed (the chain was rewritten)")
            if problem is not None:
                break
            checked, last_checkpoint = checked + 1, pending.seq
            pending = next(checkpoints, None)
        if problem is not None:
            break
        expected, prev_hash = entry.seq + 1, entry.hash
    last_seq = expected - 1
    if problem is None and pending is not None:
        problem = check_point(pending) or ChainProblem(
            pending.seq, "truncated", f"the checkpoint at seq {pending.seq} is beyond the last entry ({last_seq}): "
                                      f"entries were cut off the end")
    if problem is None and head_seq > last_seq:
        problem = ChainProblem(last_seq + 1, "truncated", f"the chain head says seq {head_seq}, the last entry is "
                                                          f"{last_seq}: entries were cut off the end")
    elif problem is None and (head is None or head.hash != prev_hash):
        problem = ChainProblem(last_seq, "head", f"the chain head does not match entry {last_seq} (the head row "
                                                 f"was changed, or entries were rewritten behind it)")
    return ChainReport(entries=last_seq, last_seq=last_seq, checkpoints=checked, last_checkpoint_seq=last_checkpoint,
                       problem=problem)


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    details: dict
    prev_hash: str
    hash: str


def entries(connection: Connection | Session, *, since: datetime | None = None, until: datetime | None = None,
            actor: str | None = None, action: str | None = None, subject: str | None = None, after: int = 0,
            limit: int = 100) -> list[Entry]:
    """Entries in seq order after seq ``after`` (for paging), filtered: at in [since, until), exact
    actor, action (``license.`` ending in a dot: every action starting so) and subject."""
    query = select(_LOG).where(_LOG.c.seq > after).order_by(_LOG.c.seq).limit(limit)
    if since is not None:
        query = query.where(_LOG.c.at >= since)
    if until is not None:
        query = query.where(_LOG.c.at < until)
    if actor is not None:
        query = query.where(_LOG.c.actor == actor)
    if action is not None:
        query = query.where(_LOG.c.action.startswith(action, autoescape=True) if action.endswith(".")
                            else _LOG.c.action == action)
    if subject is not None:
        query = query.where(_LOG.c.subject == subject)
    return [Entry(r.seq, r.at, r.actor, r.action, r.subject, json.loads(r.details), r.prev_hash, r.hash)
            for r in connection.execute(query)]
