"""Fuzz the PDF verifier (``verify.pdf.verify_pdf`` through the platform's wiring) and the PDF signing
input (``signing.pades.sign_pdf`` of arbitrary bytes, with and without a visible seal). Inputs: random
bytes, mutations of an unsigned and of signed PDFs, and small hand-made hostile PDFs (reference and
/Parent cycles, deep nesting, absurd counts and boxes). The verifier answers a report or NotAPdf /
EncryptedPdf; signing answers a PDF or a domain error; neither raises anything else nor hangs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.documents import sealer
from api.verification import verification
from eauth.errors import EauthError
from signing.pades import SEAL_FONT, Appearance, sign_pdf
from tests.fuzz.harness import domain_outcome, fuzzing, inputs
from tests.pdf_helpers import issue_seal, one_page_pdf, png
from verify.pdf import PdfReport


def pdf_of(objects: list[bytes]) -> bytes:
    """A PDF file of ``objects`` (object 1 the catalog) with a correct xref table and trailer."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"
HOSTILE = {
    "parent cycle": [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 2 0 R >>",
                     b"<< /Type /Page /Parent 3 0 R >>"],
    "kids cycle": [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"],
    "huge count": [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 99999999999 >>", PAGE],
    "negative count": [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count -1 >>", PAGE],
    "deep nesting": [b"<< /Type /Catalog /Pages 2 0 R /X " + b"[" * 5000 + b"]" * 5000 + b" >>",
                     b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE],
    "deep dictionaries": [b"<< /Type /Catalog /Pages 2 0 R /X " + b"<< /A " * 3000 + b">>" * 3000 + b" >>",
                          b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE],
    "reference loop": [b"<< /Type /Catalog /Pages 4 0 R >>", b"<< >>", b"<< >>", b"5 0 R", b"4 0 R"],
    "bad media box": [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                      b"<< /Type /Page /Parent 2 0 R /MediaBox [0 /x (y)] >>"],
    "short media box": [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0] >>"],
    "pages not a dictionary": [b"<< /Type /Catalog /Pages 2 0 R >>", b"[1 2 3]"],
    "catalog not a dictionary": [b"42"],
    "signature field garbage": [b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] >> >>",
                                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE,
                                b"<< /FT /Sig /T (s) /V << /Type /Sig /Contents <00ff> /ByteRange [0 1 2] >> >>"],
    "perms docmdp garbage": [b"<< /Type /Catalog /Pages 2 0 R /Perms << /DocMDP 4 0 R >> >>",
                             b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE, b"<< /Reference 5 >>"],
    "stream length lie": [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                          b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
                          b"<< /Length 999999 /Filter /FlateDecode >>\nstream\nxx\nendstream"],
}


@pytest.fixture(scope="module")
def seal(platform, agency):
    return sealer(platform).seal(issue_seal(platform, agency.id).serial, agency_id=agency.id, long_term=False)


@pytest.fixture(scope="module")
def seeds(seal) -> list[bytes]:
    """An unsigned one-page PDF, the same approved (B-B) and timestamped (B-T), and the hostile ones."""
    plain = one_page_pdf()
    return [plain, sign_pdf(plain, seal=seal), sign_pdf(plain, seal=seal, level="B-T"),
            *(pdf_of(objects) for objects in HOSTILE.values())]


def test_parent_cycle_under_a_visible_seal(seal, watchdog):
    """Found by the soak: a page whose /Parent chain loops made the seal-box check loop forever."""
    if not SEAL_FONT.is_file():
        pytest.skip("seal font not installed")
    outcome = domain_outcome(watchdog, sign_pdf, pdf_of(HOSTILE["parent cycle"]), seal=seal,
                             appearance=Appearance(0, 10, 10, 100, 40))
    assert isinstance(outcome, EauthError)


def test_pdf_verifier(platform, seeds, watchdog):
    verifier = verification(platform)

    @fuzzing(examples=300)
    @given(pdf=inputs(seeds, header=b"%PDF-1.7\n"))
    def run(pdf: bytes) -> None:
        assert isinstance(domain_outcome(watchdog, verifier.verify, pdf), PdfReport | EauthError)

    run()


def test_pdf_signing_input(seal, seeds, watchdog):
    appearances = st.none()
    if SEAL_FONT.is_file():
        appearances = st.none() | st.builds(Appearance, page=st.integers(-1, 2), x=st.floats(-10, 600),
                                            y=st.floats(-10, 900), width=st.floats(-1, 300),
                                            height=st.floats(-1, 300), image=st.sampled_from((None, png())))

    @fuzzing(examples=300)
    @given(pdf=inputs(seeds, header=b"%PDF-1.7\n"), appearance=appearances)
    def run(pdf: bytes, appearance: Appearance | None) -> None:
        outcome = domain_outcome(watchdog, sign_pdf, pdf, seal=seal, appearance=appearance)
        assert isinstance(outcome, bytes | EauthError)

    run()
