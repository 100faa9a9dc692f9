"""Page and object limits on the PDFs the platform verifies or signs (``eauth.pdf_limits``)."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from api.documents import sealer
from api.http import create_app
from eauth.errors import PdfTooComplex
from eauth.pdf_limits import DEFAULT_PDF_LIMITS, PdfLimits
from signing.pades import sign_pdf
from tests.conftest import token_for
from tests.helpers import assert_problem
from tests.pdf_helpers import issue_seal
from verify.pdf import TrustAnchors, verify_pdf

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
NO_TRUST = TrustAnchors(roots=())


def pdf_of(*, pages: int, extra_objects: int = 0) -> bytes:
    """A PDF of ``pages`` pages sharing one content stream, plus ``extra_objects`` unused dictionaries
    (the page tree written flat: pyHanko's insert_page would take seconds for thousands)."""
    writer = PdfFileWriter()
    content = writer.add_object(generic.StreamObject(stream_data=b"0 0 m 10 10 l S"))
    tree_ref = writer.root.raw_get("/Pages")
    kids = generic.ArrayObject()
    for _ in range(pages):
        kids.append(writer.add_object(generic.DictionaryObject({
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/Parent"): tree_ref,
            generic.pdf_name("/MediaBox"): generic.ArrayObject(map(generic.NumberObject, (0, 0, 595, 842))),
            generic.pdf_name("/Contents"): content,
        })))
    tree = tree_ref.get_object()
    tree[generic.pdf_name("/Kids")] = kids
    tree[generic.pdf_name("/Count")] = generic.NumberObject(pages)
    for number in range(extra_objects):
        writer.add_object(generic.DictionaryObject({generic.pdf_name("/N"): generic.NumberObject(number)}))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def seal_spec(platform, agency):
    record = issue_seal(platform, agency.id, name="页数限制测试")
    return sealer(platform).seal(record.serial, agency_id=agency.id, long_term=False)


def test_the_default_page_limit_refuses_a_document_one_page_over():
    over = pdf_of(pages=DEFAULT_PDF_LIMITS.max_pages + 1)
    with pytest.raises(PdfTooComplex) as refused:
        verify_pdf(over, trust=NO_TRUST, now=NOW)
    assert refused.value.code == "pdf_too_complex"
    assert refused.value.extra == {"limit": "pages", "found": DEFAULT_PDF_LIMITS.max_pages + 1,
                                   "allowed": DEFAULT_PDF_LIMITS.max_pages}


def test_within_the_limits_a_document_is_analysed():
    report = verify_pdf(pdf_of(pages=5, extra_objects=50), trust=NO_TRUST, now=NOW,
                        limits=PdfLimits(max_pages=5, max_objects=100))
    assert report.signatures == () and report.size > 0  # an unsigned document: a report, not a refusal


def test_objects_over_the_limit_are_refused_before_the_pages_are_looked_at():
    many = pdf_of(pages=1, extra_objects=500)
    with pytest.raises(PdfTooComplex) as refused:
        verify_pdf(many, trust=NO_TRUST, now=NOW, limits=PdfLimits(max_pages=1, max_objects=400))
    assert refused.value.extra["limit"] == "objects" and refused.value.extra["found"] > 500


def test_objects_in_every_revision_count(seal_spec):
    unsigned = pdf_of(pages=1, extra_objects=100)
    objects = len(PdfFileReader(io.BytesIO(unsigned), strict=False).xrefs.explicit_refs_in_revision(0))
    limits = PdfLimits(max_objects=objects)
    assert verify_pdf(unsigned, trust=NO_TRUST, now=NOW, limits=limits).signatures == ()
    signed = sign_pdf(unsigned, seal=seal_spec)  # a second revision: the signature's objects
    with pytest.raises(PdfTooComplex) as refused:
        verify_pdf(signed, trust=NO_TRUST, now=NOW, limits=limits)
    assert refused.value.extra["found"] > objects


def test_signing_refuses_a_document_over_the_limits(seal_spec):
    with pytest.raises(PdfTooComplex) as pages:
        sign_pdf(pdf_of(pages=4), seal=seal_spec, limits=PdfLimits(max_pages=3))
    assert pages.value.extra == {"limit": "pages", "found": 4, "allowed": 3}
    with pytest.raises(PdfTooComplex):
        sign_pdf(pdf_of(pages=DEFAULT_PDF_LIMITS.max_pages + 1), seal=seal_spec)
    assert sign_pdf(pdf_of(pages=3), seal=seal_spec, limits=PdfLimits(max_pages=3)).startswith(b"%PDF-")


def test_http_answers_400_pdf_too_complex_with_the_configured_limit(platform, api, agency):
    headers = {"Authorization": f"Bearer {token_for(api, platform, agency.code, {'verify'})}"}
    settings = platform.settings.model_copy(update={"max_pdf_pages": 2, "signing_processes": 1})
    with TestClient(create_app(settings, platform=platform)) as client:
        response = client.post("/api/v1/verify/pdf", headers=headers,
                               files={"file": ("three.pdf", pdf_of(pages=3), "application/pdf")})
    body = assert_problem(response, 400, "pdf_too_complex")
    assert (body["limit"], body["found"], body["allowed"]) == ("pages", 3, 2)
    assert "at most 2" in body["detail"]
