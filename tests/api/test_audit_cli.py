"""``eauth audit verify`` and ``eauth audit checkpoint`` as an operator runs them (the installed entry
point in its own process), over the test platform's database tampered with directly: an edited, a
deleted, a swapped entry, a cut-off tail and a forged checkpoint are each named by seq. Every test puts
the rows back as they were."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from api.platform import initialize_platform
from store import audit
from store.models import AuditCheckpoint, AuditEntry
from tests.helpers import PASSPHRASE

LOG = AuditEntry.__table__
CHECKPOINTS = AuditCheckpoint.__table__


def eauth(settings, *args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("eauth", path=str(Path(sys.executable).parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")}
    env |= {"EAUTH_DATA_DIR": str(settings.data_dir), "EAUTH_DATABASE_URL": settings.database_url,
            "EAUTH_KEY_PASSPHRASE": PASSPHRASE, "EAUTH_PUBLIC_BASE_URL": settings.public_base_url}
    result = subprocess.run([script, *args], cwd=settings.data_dir, env=env, capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def verified(settings) -> tuple[int, dict]:
    result = eauth(settings, "audit", "verify", "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def chain(platform) -> Iterator[list]:
    """At least 5 entries and a checkpoint of the last: the rows, in seq order (put back afterwards)."""
    for n in range(5):
        with platform.db.transaction() as connection:
            audit.record(connection, actor="operator", action="test.cli", subject=f"row-{n}", details={"n": n})
    assert eauth(platform.settings, "audit", "checkpoint").returncode == 0
    with platform.db.transaction() as connection:
        rows = connection.execute(select(LOG).order_by(LOG.c.seq.desc()).limit(5)).all()[::-1]
    yield rows
    assert verified(platform.settings)[0] == 0, "a test left the chain broken"


@contextmanager
def restored(platform, *rows) -> Iterator[None]:
    try:
        yield
    finally:
        with platform.db.transaction() as connection:
            for row in rows:
                connection.execute(delete(LOG).where(LOG.c.seq == row.seq))
                connection.execute(insert(LOG).values(**row._asdict()))


def test_intact_chain_exits_0(platform, chain):
    result = eauth(platform.settings, "audit", "verify")
    assert result.returncode == 0 and "audit chain intact" in result.stdout, result.stdout
    code, report = verified(platform.settings)
    assert code == 0 and report["intact"] and report["last_checkpoint_seq"] == chain[-1].seq
    assert report["entries"] == chain[-1].seq


def test_edited_row_is_named(platform, chain):
    target = chain[1]
    with restored(platform, target):
        with platform.db.transaction() as connection:
            connection.execute(update(LOG).where(LOG.c.seq == target.seq).values(details='{"n":"edited"}'))
        result = eauth(platform.settings, "audit", "verify")
        assert result.returncode == 1
        assert f"BROKEN at seq {target.seq} (altered)" in result.stdout, result.stdout


def test_deleted_row_is_named(platform, chain):
    target = chain[2]
    with restored(platform, target):
        with platform.db.transaction() as connection:
            connection.execute(delete(LOG).where(LOG.c.seq == target.seq))
        code, report = verified(platform.settings)
        assert code == 1 and (report["problem"]["seq"], report["problem"]["kind"]) == (target.seq, "missing")


def test_swapped_rows_are_named(platform, chain):
    first, second = chain[1], chain[3]
    columns = ("at", "actor", "action", "subject", "details", "prev_hash", "hash")
    with restored(platform, first, second):
        with platform.db.transaction() as connection:
            for target, source in ((first, second), (second, first)):
                connection.execute(update(LOG).where(LOG.c.seq == target.seq)
                                   .values({c: getattr(source, c) for c in columns}))
        code, report = verified(platform.settings)
        assert code == 1 and report["problem"]["seq"] == first.seq


def test_truncated_tail_is_named(platform, chain):
    last = chain[-1]  # checkpointed
    with restored(platform, *chain[-2:]):
        with platform.db.transaction() as connection:
            connection.execute(delete(LOG).where(LOG.c.seq >= chain[-2].seq))
        code, report = verified(platform.settings)
        assert code == 1 and (report["problem"]["seq"], report["problem"]["kind"]) == (last.seq, "truncated")


def test_forged_checkpoint_is_named(platform, chain):
    with platform.db.transaction() as connection:
        checkpoint = connection.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.seq == chain[-1].seq)).one()
        forged = bytearray(checkpoint.signature)
        forged[-1] ^= 1
        connection.execute(update(CHECKPOINTS).where(CHECKPOINTS.c.seq == checkpoint.seq)
                           .values(signature=bytes(forged)))
    try:
        code, report = verified(platform.settings)
        assert code == 1 and (report["problem"]["seq"], report["problem"]["kind"]) == (checkpoint.seq, "checkpoint")
    finally:
        with platform.db.transaction() as connection:
            connection.execute(update(CHECKPOINTS).where(CHECKPOINTS.c.seq == checkpoint.seq)
                               .values(signature=checkpoint.signature))


def test_checkpoint_twice_signs_once(platform, chain):
    result = eauth(platform.settings, "audit", "checkpoint")
    assert result.returncode == 0 and "nothing to sign" in result.stdout


def test_init_rerun_adds_the_checkpoint_key_to_an_existing_data_dir(settings, tmp_path):
    from keys.filestore import FileKeyStore

    fresh = settings.model_copy(update={"data_dir": tmp_path, "database_url": f"sqlite:///{tmp_path / 'e.db'}"})
    initialize_platform(fresh)
    FileKeyStore(tmp_path / "keys", PASSPHRASE).delete(audit.CHECKPOINT_KEY_LABEL)  # a data dir made before it
    result, _ = initialize_platform(fresh)
    assert audit.CHECKPOINT_KEY_LABEL in result.created
    assert FileKeyStore(tmp_path / "keys", PASSPHRASE).has_key(audit.CHECKPOINT_KEY_LABEL)
