"""The audit chain (``store.audit``): appends in the caller's transaction, the walk that finds the first
altered, missing or moved entry, signed checkpoints, and appends from several processes at once."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timezone

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, func, select, update

from store import audit
from store.db import Database
from store.models import AuditCheckpoint, AuditEntry, AuditHead

KEY = ec.generate_private_key(ec.SECP256R1())


def _sign(data: bytes) -> bytes:
    return KEY.sign(data, ec.ECDSA(hashes.SHA256()))


def _good(checkpoint: audit.Checkpoint) -> bool:
    try:
        KEY.public_key().verify(checkpoint.signature, audit.checkpoint_bytes(
            seq=checkpoint.seq, hash=checkpoint.hash, at=checkpoint.at), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _fill(db: Database, count: int, *, checkpoint_at: int | None = None) -> None:
    for n in range(1, count + 1):
        with db.transaction() as connection:
            audit.record(connection, actor=f"client:c{n % 3}", action="license.issue" if n % 2 else "verify.qr",
                         subject=f"L-{n}",
                         details={"n": n, "name": "张三", "at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
        if n == checkpoint_at:
            with db.transaction() as connection:
                audit.add_checkpoint(connection, sign=_sign, key_id="test")


def _verify(db: Database) -> audit.ChainReport:
    with db.transaction() as connection:
        return audit.verify_chain(connection, verify_signature=_good)


def _problem(db: Database) -> tuple[int, str]:
    report = _verify(db)
    assert not report.intact
    return report.problem.seq, report.problem.kind


def test_chain_intact_with_sessions_connections_and_a_rollback(db):
    _fill(db, 3)
    with db.session() as session:
        audit.record(session, actor="operator", action="agency.add", subject=None)
    with pytest.raises(RuntimeError), db.transaction() as connection:
        audit.record(connection, actor="operator", action="rolled.back", subject="x")
        raise RuntimeError("the change fails: its entry goes with it")
    _fill(db, 2)
    report = _verify(db)
    assert report.intact and report.entries == 6 and report.last_seq == 6
    with db.transaction() as connection:
        found = audit.entries(connection, limit=100)
        assert [e.seq for e in found] == [1, 2, 3, 4, 5, 6]
        assert "rolled.back" not in {e.action for e in found}
        assert found[0].prev_hash == audit.GENESIS and all(b.prev_hash == a.hash for a, b in zip(found, found[1:]))
        assert found[0].details == {"n": 1, "name": "张三", "at": "2026-01-01T00:00:00+00:00"}
        assert [e.seq for e in audit.entries(connection, action="license.")] == [1, 3, 5]
        assert [e.seq for e in audit.entries(connection, action="license")] == []
        assert [e.seq for e in audit.entries(connection, actor="operator")] == [4]
        assert [e.seq for e in audit.entries(connection, subject="L-2")] == [2, 6]
        assert [e.seq for e in audit.entries(connection, after=4, limit=1)] == [5]


def test_empty_chain_is_intact(db):
    report = _verify(db)
    assert report.intact and report.entries == 0 and report.checkpoints == 0


def test_edited_row_is_named(db):
    _fill(db, 5)
    with db.transaction() as connection:
        connection.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(details='{"n":333}'))
    assert _problem(db) == (3, "altered")


def test_edited_row_with_its_hash_recomputed_breaks_the_next_link(db):
    _fill(db, 5)
    with db.transaction() as connection:
        row = connection.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 3)).one()
        forged = audit.entry_hash(seq=3, at=row.at, actor="operator", action=row.action, subject=row.subject,
                                  details=row.details, prev_hash=row.prev_hash)
        connection.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor="operator", hash=forged))
    assert _problem(db) == (4, "link")


def test_deleted_row_is_named(db):
    _fill(db, 5)
    with db.transaction() as connection:
        connection.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    assert _problem(db) == (2, "missing")


def test_swapped_rows_are_named(db):
    _fill(db, 5)
    columns = ("at", "actor", "action", "subject", "details", "prev_hash", "hash")
    with db.transaction() as connection:
        table = AuditEntry.__table__
        two, four = (connection.execute(select(table).where(table.c.seq == n)).one() for n in (2, 4))
        for target, source in ((2, four), (4, two)):
            values = {c: getattr(source, c) for c in columns}
            connection.execute(update(table).where(table.c.seq == target).values(values))
    assert _problem(db) == (2, "link")


def test_truncated_tail_is_found_by_the_head_and_by_a_checkpoint(db):
    _fill(db, 6, checkpoint_at=6)
    with db.transaction() as connection:
        connection.execute(delete(AuditEntry).where(AuditEntry.seq >= 5))
    assert _problem(db) == (6, "truncated")  # the checkpoint at 6 is beyond the last entry (4)
    with db.transaction() as connection:  # the checkpoint removed too: the head still says 6
        connection.execute(delete(AuditCheckpoint))
    assert _problem(db) == (5, "truncated")


def test_rewritten_chain_is_caught_by_the_checkpoint(db):
    """Every hash recomputed after an edit: the links hold, the signed checkpoint does not."""
    _fill(db, 4, checkpoint_at=4)
    table = AuditEntry.__table__
    with db.transaction() as connection:
        prev = audit.GENESIS
        for row in connection.execute(select(table).order_by(table.c.seq)).all():
            actor = "nobody" if row.seq == 2 else row.actor
            digest = audit.entry_hash(seq=row.seq, at=row.at, actor=actor, action=row.action, subject=row.subject,
                                      details=row.details, prev_hash=prev)
            connection.execute(update(table).where(table.c.seq == row.seq).values(actor=actor, prev_hash=prev,
                                                                                  hash=digest))
            prev = digest
        connection.execute(update(AuditHead).values(hash=prev))
    assert _problem(db) == (4, "checkpoint")


def test_forged_checkpoint_signature_is_reported(db):
    _fill(db, 3, checkpoint_at=2)
    _fill(db, 1)
    assert _verify(db).intact and _verify(db).checkpoints == 1
    with db.transaction() as connection:
        connection.execute(update(AuditCheckpoint).values(signature=_sign(b"something else")))
    assert _problem(db) == (2, "checkpoint")


def test_checkpoint_only_when_there_is_something_new(db):
    with db.transaction() as connection:
        assert audit.add_checkpoint(connection, sign=_sign, key_id="test") is None  # empty log
    _fill(db, 2)
    with db.transaction() as connection:
        made = audit.add_checkpoint(connection, sign=_sign, key_id="test")
        assert made.seq == 2 and _good(made)
        assert audit.add_checkpoint(connection, sign=_sign, key_id="test") is None
    report = _verify(db)
    assert report.intact and report.checkpoints == 1 and report.last_checkpoint_seq == 2


def _append_many(url: str, worker: int, count: int) -> None:
    database = Database(url)
    try:
        for n in range(count):
            with database.transaction() as connection:
                audit.record(connection, actor=f"worker:{worker}", action="test.append", subject=str(n))
    finally:
        database.dispose()


def test_several_processes_appending_at_once_make_one_chain(db):
    """No fork, no repeated or missing seq; and the chain verifies at every moment while they write."""
    workers, each = 4, 40
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_append_many, args=(db.url, w, each)) for w in range(workers)]
    for process in processes:
        process.start()
    walks = 0
    while any(process.is_alive() for process in processes):  # the walk while they append
        report = _verify(db)
        assert report.intact, report.problem
        walks += 1
    assert walks
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    report = _verify(db)
    assert report.intact and report.entries == workers * each
    with db.transaction() as connection:
        seqs = connection.execute(select(AuditEntry.seq).order_by(AuditEntry.seq)).scalars().all()
        assert seqs == list(range(1, workers * each + 1))
        per_worker = dict(connection.execute(select(AuditEntry.actor, func.count()).group_by(AuditEntry.actor)).all())
    assert per_worker == {f"worker:{w}": each for w in range(workers)}


def test_migration_0005_down_and_up(db):
    from alembic import command
    from sqlalchemy import inspect

    config = db._alembic_config()
    command.downgrade(config, "0004")
    assert "audit_log" not in inspect(db.engine).get_table_names()
    command.upgrade(config, "0005_audit")
    assert {"audit_log", "audit_head", "audit_checkpoints"} <= set(inspect(db.engine).get_table_names())
    with db.transaction() as connection:
        assert connection.execute(select(AuditHead.seq, AuditHead.hash)).one() == (0, audit.GENESIS)
        audit.record(connection, actor="operator", action="test", subject=None)
    assert _verify(db).intact


def test_values_longer_than_their_columns_are_cut_not_refused(db):
    with db.transaction() as connection:
        audit.record(connection, actor="a" * 500, action="b" * 100, subject="c" * 1000)
        [entry] = audit.entries(connection)
    assert (len(entry.actor), len(entry.action), len(entry.subject)) == (200, 64, 300)
    assert _verify(db).intact
