"""CRLs: one per CA (the root and each issuing CA), numbered, with a nextUpdate, signed by that CA.

A CRL may list a million certificates. Each entry is encoded once, when its certificate's status
changes (``ca.lifecycle.crl_entry``), and stored with it; making a CRL streams those stored entries
out of the database and joins them, as they are, into the TBSCertList that cryptography built
*without* entries. No object is made per entry: cryptography's CertificateRevocationListBuilder needs
a RevokedCertificate per entry, and with the entries already in memory it is still ~4× slower than
this with the database read (quadratic if they are added one by one; ``bench/crl_bench.py``). A
status change never costs anything proportional to the size of the CRL: it does not regenerate the
CRL at all (OCSP answers at once); the change shows in the next CRL, made on a schedule, on demand
when the current one is due, or by ``eauth crl publish``.

cRLNumber is allocated in the short transaction that stores the CRL, by an UPDATE of the CA's row,
so concurrent publishers (several API processes, a cron job) never reuse a number: the database
serialises them. The entries are read after the number is allocated, in that transaction: a
publisher that read them before, in a transaction of its own, could be overtaken by one that read
later and stored first, and then store under the higher number a CRL without the revocations listed
under the lower one. Holding the lock for the read blocks only other publishers on PostgreSQL; on
SQLite, writers wait for the read too (a second or so with a million entries, once per CRL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from asn1crypto import core
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authority import Clock, utcnow
from ca.records import AuthorityRecord
from eauth.errors import NotFound
from keys.base import KeyStore, Signer
from eauth.der import header as der_header
from keys.x509 import crl_draft

#: Roles of the authorities that sign CRLs (those with the cRLSign key usage).
CRL_ISSUER_ROLES = ("root", "issuing")


@dataclass(frozen=True, slots=True)
class StoredCrl:
    """A CA's latest CRL; ``der`` is None when it was read without its bytes (headers, checks)."""

    issuer: str
    number: int
    this_update: datetime
    next_update: datetime
    entries: int
    der: bytes | None = None


@dataclass(frozen=True, slots=True)
class CrlPolicy:
    """When CRLs are made and how long they are valid."""

    #: thisUpdate → nextUpdate.
    validity: timedelta
    #: A new CRL is due once the current one is this close to its nextUpdate; HTTP caches may keep it
    #: until then. Shorter than ``validity``.
    refresh_margin: timedelta

    def __post_init__(self) -> None:
        if not timedelta(0) < self.refresh_margin < self.validity:
            raise ValueError("the CRL refresh margin must be positive and shorter than the CRL validity")

    def due(self, crl: StoredCrl | None, now: datetime) -> bool:
        """Whether a new CRL should be made: there is none, or it is within the margin of nextUpdate."""
        return crl is None or now >= crl.next_update - self.refresh_margin

    def fresh_for(self, crl: StoredCrl, now: datetime) -> int:
        """Seconds until ``crl`` becomes due (0 if it is): how long a cache may keep it."""
        return max(0, int((crl.next_update - self.refresh_margin - now).total_seconds()))


class CrlStore(Protocol):
    """Persistence CRL publication needs, within one transaction (implemented in ``store.crl_store``)."""

    def authority(self, name: str) -> AuthorityRecord | None: ...

    def crl_issuers(self) -> list[str]:
        """Names of the authorities that sign CRLs (roles in ``CRL_ISSUER_ROLES``), the root first."""
        ...

    def crl(self, issuer: str, *, with_der: bool = True) -> StoredCrl | None:
        """The latest stored CRL of ``issuer``."""
        ...

    def revocation_entries(self, issuer: str) -> Iterator[Sequence[bytes]]:
        """The stored DER entries of every certificate ``issuer`` signed that is revoked or on hold, CA
        certificates included, in batches streamed from the database (never all rows at once)."""
        ...

    def allocate_crl_number(self, issuer: str, *, this_update: datetime, next_update: datetime
                            ) -> tuple[int, StoredCrl | None]:
        """The next cRLNumber of ``issuer`` and its latest CRL before it (without der), the CA's row
        locked against other publishers until the transaction ends."""
        ...

    def save_crl(self, crl: StoredCrl) -> None:
        """Store ``crl`` as the latest of its issuer (its number allocated in this transaction)."""
        ...


#: Opens one transaction: committed when the block ends, rolled back if it raises.
CrlTransaction = Callable[[], AbstractContextManager[CrlStore]]


class CrlPublisher:
    """Makes, stores and hands out the CRLs of the platform's CAs."""

    def __init__(self, keys: KeyStore, *, policy: CrlPolicy, clock: Clock = utcnow) -> None:
        self.keys = keys
        self.policy = policy
        self.clock = clock

    def publish(self, transaction: CrlTransaction, issuer: str) -> StoredCrl:
        """Make and store a new CRL of ``issuer``, due or not, and return it; NotFound if ``issuer``
        signs no CRLs. If another publisher stored one with a later thisUpdate meanwhile, that one is
        returned and this one dropped: a higher number never lists an older state."""
        made = self._make(transaction, issuer, only_if_due=False)
        if made is None:
            with transaction() as store:
                return store.crl(issuer)
        return made

    def refresh_one(self, transaction: CrlTransaction, issuer: str) -> StoredCrl | None:
        """Make and store a new CRL of ``issuer`` if it has none or it is due; None if not (or another
        process made it meanwhile). Due is checked before the work and again under the lock, so that of
        several processes refreshing at once one publishes and the others stop."""
        with transaction() as store:
            _crl_issuer(store, issuer)
            if not self.policy.due(store.crl(issuer, with_der=False), self.clock()):
                return None
        return self._make(transaction, issuer, only_if_due=True)

    def refresh(self, transaction: CrlTransaction,
                on_error: Callable[[str, Exception], None] | None = None) -> list[StoredCrl]:
        """``refresh_one`` for every CA; returns the CRLs made. With ``on_error``, a CA that fails (its
        key unavailable, say) is reported there and the others are still refreshed."""
        made = []
        for issuer in self.issuers(transaction):
            try:
                crl = self.refresh_one(transaction, issuer)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(issuer, exc)
                continue
            if crl is not None:
                made.append(crl)
        return made

    def current(self, transaction: CrlTransaction, issuer: str, *, with_der: bool = True) -> StoredCrl:
        """The CRL to serve: the stored one, or a new one first if there is none or it is due."""
        with transaction() as store:
            _crl_issuer(store, issuer)
            latest = store.crl(issuer, with_der=with_der)
        if self.policy.due(latest, self.clock()):
            latest = self._make(transaction, issuer, only_if_due=True)
            if latest is None:  # made by another process meanwhile
                with transaction() as store:
                    latest = store.crl(issuer, with_der=with_der)
        return latest

    def issuers(self, transaction: CrlTransaction) -> list[str]:
        """The CAs that sign CRLs, the root first."""
        with transaction() as store:
            return store.crl_issuers()

    def _make(self, transaction: CrlTransaction, issuer: str, *, only_if_due: bool) -> StoredCrl | None:
        """Make and store a CRL; None if, once the number is locked, another publisher turns out to have
        stored a newer one, or (``only_if_due``) the stored one is no longer due."""
        with transaction() as store:
            authority = _crl_issuer(store, issuer)
        signer = self.keys.signer(authority.key_label)
        try:
            with transaction() as store:
                # thisUpdate is taken before the entries are read: every status change before it is listed.
                this_update = self.clock()
                next_update = this_update + self.policy.validity
                number, previous = store.allocate_crl_number(issuer, this_update=this_update, next_update=next_update)
                if previous is not None and (
                    previous.this_update > this_update or (only_if_due and not self.policy.due(previous, self.clock()))
                ):
                    raise _Superseded  # rolls the allocation back
                # The entries are read holding the number: publishers read in the order of their numbers.
                chunks, count = [], 0
                for batch in store.revocation_entries(issuer):
                    chunks.append(b"".join(batch))
                    count += len(batch)
                der = build_crl(authority, signer, number=number, this_update=this_update,
                                next_update=next_update, entries=chunks)
                del chunks
                crl = StoredCrl(issuer, number, this_update, next_update, count, der)
                store.save_crl(crl)
        except _Superseded:
            return None
        return crl


class _Superseded(Exception):
    """Another publisher stored a newer CRL while this one was being made: keep theirs."""


def _crl_issuer(store: CrlStore, name: str) -> AuthorityRecord:
    record = store.authority(name)
    if record is None or record.role not in CRL_ISSUER_ROLES:
        raise NotFound(f"no CRL issuer {name!r}")
    return record


def build_crl(authority: AuthorityRecord, signer: Signer, *, number: int, this_update: datetime,
              next_update: datetime, entries: Sequence[bytes]) -> bytes:
    """The DER CRL of ``authority`` with the given already-encoded ``revokedCertificates`` entries
    (``entries``: byte strings, each one or more entries back to back), signed by ``signer``.

    cryptography builds the CRL without entries (version 2, issuer, times, AKI and cRLNumber, all
    checked and encoded its way) with a throw-away key of the signer's type; its TBSCertList gets the
    entries spliced in before crlExtensions, the real signer signs that, and the signatureAlgorithm of
    the draft wraps it as the CertificateList.
    """
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    draft = crl_draft(builder, signer)
    tbs = _with_entries(draft.tbs_certlist_bytes, entries)
    algorithm = asn1_crl.CertificateList.load(draft.public_bytes(Encoding.DER))["signature_algorithm"].dump()
    signature = core.OctetBitString(signer.sign(tbs)).dump()
    return b"".join((der_header(_SEQUENCE, len(tbs) + len(algorithm) + len(signature)), tbs, algorithm, signature))


def _with_entries(draft_tbs: bytes, entries: Sequence[bytes]) -> bytes:
    """``draft_tbs`` (a TBSCertList with no revokedCertificates) with ``entries`` as its
    revokedCertificates; unchanged when there are none (RFC 5280: the field is then absent)."""
    parsed = asn1_crl.TbsCertList.load(draft_tbs)
    if not isinstance(parsed["revoked_certificates"], core.Void):
        raise ValueError("the draft CRL already has entries")
    size = sum(map(len, entries))
    if size == 0:
        return draft_tbs
    extensions = parsed["crl_extensions"].dump()  # with its [0] EXPLICIT tag, as it ends the contents
    contents = parsed.contents
    if not contents.endswith(extensions):
        raise ValueError("crlExtensions are not the last field of the draft CRL")
    fields = contents[: len(contents) - len(extensions)]  # version, signature, issuer, thisUpdate, nextUpdate
    revoked_header = der_header(_SEQUENCE, size)
    length = len(fields) + len(revoked_header) + size + len(extensions)
    return b"".join((der_header(_SEQUENCE, length), fields, revoked_header, *entries, extensions))


_SEQUENCE = 0x30  # universal, constructed, tag 16

