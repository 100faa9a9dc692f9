"""What the license and verification benchmarks all start from: an issuing agency with its seal and the
demo driving-licence type in a fresh platform's catalog."""

from __future__ import annotations

from api.licenses import license_service
from api.platform import Platform
from ca.profiles import SubjectKind
from ca.records import CertificateRecord
from ca.subjects import SubjectIdentity
from licenses.catalog import LicenseType, demo_types
from store.agencies import AgencyRecord, add_agency
from store.ca_store import SqlCaStore


def licensing_agency(platform: Platform, *, code: str, name: str,
                     credit_code: str) -> tuple[AgencyRecord, CertificateRecord, LicenseType]:
    """The agency ``code`` with an agency-seal certificate (key kept by the platform) and the driving
    licence type of ``demo_types`` defined for it."""
    with platform.db.session() as session:
        agency = add_agency(session, code=code, name=name, credit_code=credit_code)
        seal = platform.ca.issue(SqlCaStore(session), profile_name="agency-seal", requested_by=agency.id,
                                 subject=SubjectIdentity(SubjectKind.AGENCY, name, credit_code)).record
    driving = demo_types(code)[1]
    license_service(platform).define_type(driving, agency_id=agency.id)
    return agency, seal, driving
