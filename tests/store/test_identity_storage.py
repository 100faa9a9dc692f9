"""Identity numbers are stored only encrypted and blind-indexed, yet a person is findable by number."""

from __future__ import annotations

from sqlalchemy import select

from ca.profiles import SubjectKind
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from store.models import Base
from tests.helpers import citizen_id, ec_csr


def _all_database_values(platform) -> str:
    dumped = []
    with platform.db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                dumped.extend(v.hex() if isinstance(v, bytes) else str(v) for v in row)
                dumped.extend(repr(v) for v in row if isinstance(v, bytes))
    return "\n".join(dumped)


def test_number_never_stored_in_clear_but_findable(platform, agency):
    number = citizen_id()
    with platform.db.session() as session:
        store = SqlCaStore(session)
        issued = platform.ca.issue(store, profile_name="citizen", requested_by=agency.id, csr=ec_csr()[0],
                                   subject=SubjectIdentity(SubjectKind.PERSON, "李四", number))
    everything = _all_database_values(platform)
    assert number not in everything
    assert number.encode().hex() not in everything
    assert number.encode() not in issued.record.der

    with platform.db.session() as session:
        store = SqlCaStore(session)
        subject = store.subject_by_index("person", platform.ca.identities.index(SubjectKind.PERSON, number))
        assert subject is not None and subject.id == issued.record.subject_id
        assert platform.ca.identities.decrypt(subject) == number
        assert [c.serial for c in store.certificates_of_subject(subject.id)] == [issued.record.serial]


def test_same_person_same_subject_and_pseudonym(platform, agency):
    number = citizen_id()
    serials, subjects = [], set()
    for name in ("王五", "王 五"):  # a corrected name updates the subject, it does not make a new one
        with platform.db.session() as session:
            issued = platform.ca.issue(SqlCaStore(session), profile_name="citizen", requested_by=agency.id,
                                       csr=ec_csr()[0], subject=SubjectIdentity(SubjectKind.PERSON, name, number))
        serials.append(issued.record.serial)
        subjects.add(issued.record.subject_id)
    assert len(subjects) == 1 and serials[0] != serials[1]
    with platform.db.session() as session:
        assert SqlCaStore(session).subject(subjects.pop()).name == "王 五"
