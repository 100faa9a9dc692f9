"""Audit wiring: checkpoints signed with the platform's audit-checkpoint key, and the chain walk that
checks them with its public key (shared by ``eauth audit`` and ``/api/v1/audit``)."""

from __future__ import annotations

import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy.exc import IntegrityError

from api.platform import Platform
from keys.jws import jwk_thumbprint
from store.audit import (
    CHECKPOINT_KEY_LABEL, ChainReport, Checkpoint, add_checkpoint, checkpoint_bytes, verify_chain,
)


def _key_id(public_key) -> str:
    return jwk_thumbprint(json.loads(ECAlgorithm.to_jwk(public_key)))


def checkpoint(p: Platform) -> Checkpoint | None:
    """Sign the chain's last entry now (None if it is signed already or the log is empty)."""
    signer = p.keys.signer(CHECKPOINT_KEY_LABEL)
    try:
        with p.db.transaction() as connection:
            return add_checkpoint(connection, sign=signer.sign, key_id=_key_id(signer.public_key))
    except IntegrityError:  # another process signed the same entry at the same moment: it is signed
        return None


def verify(p: Platform) -> ChainReport:
    """Walk the whole chain and check every checkpoint against the platform's checkpoint key."""
    public_key = p.keys.signer(CHECKPOINT_KEY_LABEL).public_key
    key_id = _key_id(public_key)

    def good(c: Checkpoint) -> bool:
        if c.key_id != key_id:
            return False
        try:
            public_key.verify(c.signature, checkpoint_bytes(seq=c.seq, hash=c.hash, at=c.at), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    with p.db.transaction() as connection:
        return verify_chain(connection, verify_signature=good)


def report_json(report: ChainReport) -> dict:
    """The walk's outcome as the API and ``eauth audit verify --json`` show it."""
    problem = report.problem
    return {"intact": report.intact, "entries": report.entries, "last_seq": report.last_seq,
            "checkpoints": report.checkpoints, "last_checkpoint_seq": report.last_checkpoint_seq,
            "problem": None if problem is None else {"seq": problem.seq, "kind": problem.kind,
                                                     "message": problem.message}}
