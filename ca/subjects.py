"""Subjects and their identity numbers: validated, pseudonymised, encrypted, findable.

A citizen ID number never goes into a certificate or a database column in clear. Certificates carry
a keyed pseudonym (HMAC under a platform secret: stable per person, useless without the key); the
database keeps the number AES-GCM-encrypted plus a blind index (another keyed hash) so the platform
can find a person by number without decrypting every row.
"""

from __future__ import annotations

import base64
import unicodedata
import uuid
from dataclasses import dataclass

from ca.identifiers import validate_citizen_id, validate_credit_code
from ca.profiles import SubjectKind
from ca.records import SubjectRecord
from eauth.errors import InvalidInput
from keys.base import KeyStore

#: X.509's upper bound for organizationName and commonName (RFC 5280 ub-organization-name, ub-common-name).
MAX_NAME_LENGTH = 64
PSEUDONYM_SECRET = "subject-pseudonym"
INDEX_SECRET = "subject-index"
ENCRYPTION_SECRET = "subject-encryption"


@dataclass(frozen=True, slots=True)
class SubjectIdentity:
    """Who a certificate is for, as verified by the registering agency."""

    kind: SubjectKind
    name: str
    id_number: str

    def validated(self) -> SubjectIdentity:
        """A copy with the number normalised; InvalidIdentifier naming the bad character otherwise."""
        name = " ".join(self.name.split())
        if not name or len(name) > MAX_NAME_LENGTH:
            raise InvalidInput(f"subject name must be 1 to {MAX_NAME_LENGTH} characters")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name):
            raise InvalidInput("subject name contains control, format or unassigned characters")
        if self.kind is SubjectKind.PERSON:
            number = validate_citizen_id(self.id_number)
        else:
            number = validate_credit_code(self.id_number)
        return SubjectIdentity(self.kind, name, number)


class IdentityProtector:
    """Keyed pseudonyms, blind indexes and encryption of identity numbers, with secrets from the key store."""

    def __init__(self, keys: KeyStore) -> None:
        self._pseudonym = keys.secret(PSEUDONYM_SECRET)
        self._index = keys.secret(INDEX_SECRET)
        self._encryption = keys.secret(ENCRYPTION_SECRET)

    @staticmethod
    def _canonical(kind: SubjectKind, number: str) -> bytes:
        return f"{kind.value}:{number}".encode()

    def index(self, kind: SubjectKind, number: str) -> str:
        return self._index.mac(self._canonical(kind, number)).hex()

    def pseudonym(self, kind: SubjectKind, number: str) -> str:
        digest = self._pseudonym.mac(self._canonical(kind, number))[:20]
        return "P" + base64.b32encode(digest).decode().rstrip("=")

    def decrypt(self, record: SubjectRecord) -> str:
        aad = f"{record.kind}:{record.id}".encode()
        return self._encryption.decrypt(record.id_number_ciphertext, associated_data=aad).decode()

    def new_record(self, identity: SubjectIdentity, *, registered_by: int) -> SubjectRecord:
        """A record for ``identity`` (already validated), encrypted and indexed."""
        subject_id = uuid.uuid4().hex
        aad = f"{identity.kind.value}:{subject_id}".encode()
        return SubjectRecord(
            id=subject_id,
            kind=identity.kind.value,
            name=identity.name,
            pseudonym=self.pseudonym(identity.kind, identity.id_number),
            id_number_index=self.index(identity.kind, identity.id_number),
            id_number_ciphertext=self._encryption.encrypt(identity.id_number.encode(), associated_data=aad),
            registered_by=registered_by,
        )
