"""PAdES signing with agency seals: each level validated by pyHanko (B-LT and up with only the data
embedded in the document, fetching disabled), by poppler's pdfsig against an NSS database holding our
root, bad input refused with its error, and a seal key on SoftHSM2."""

from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import (
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext

from api.documents import sealer
from api.platform import Platform, initialize_platform
from eauth.errors import (
    DocumentLocked,
    EncryptedPdf,
    InvalidSealImage,
    NoSealKey,
    NotAPdf,
    PageOutOfRange,
    SealBoxOffPage,
    SealFontMissing,
)
from eauth.settings import Settings
from signing.pades import (
    SEAL_FONT,
    Appearance,
    KeyStoreSigner,
    _font_program,
    async_sign_pdf,
    seal_image,
    sign_pdf,
)
from store.agencies import add_agency
from tests.conftest import fresh_database, require_seal_font, require_tool
from tests.pdf_helpers import issue_seal, one_page_pdf, png

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
BOX = Appearance(page=0, x=380, y=40, width=180, height=60, image=png())


@pytest.fixture(scope="module")
def seal_record(platform, agency):
    return issue_seal(platform, agency.id)


@pytest.fixture(scope="module")
def root(platform) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(sealer(platform).root.public_bytes(Encoding.DER))


@pytest.fixture(scope="module")
def signed(platform, agency, seal_record) -> dict[str, bytes]:
    """One document per level: certified (no changes), with a visible seal."""
    require_seal_font()
    documents = {}
    for level in LEVELS:
        spec = sealer(platform).seal(seal_record.serial, agency_id=agency.id, long_term=level in ("B-LT", "B-LTA"))
        documents[level] = sign_pdf(one_page_pdf(), seal=spec, level=level, certify="no-changes", appearance=BOX)
    return documents


def _validate(document: bytes, root, *, embedded_only: bool = False, index: int = 0):
    reader = PdfFileReader(io.BytesIO(document))
    signature = reader.embedded_signatures[index]
    if embedded_only:
        # Revocation checking required, nothing fetched: it passes only with what the DSS holds.
        kwargs = {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
        context = DocumentSecurityStore.read_dss(reader).as_validation_context(kwargs)
        ts_context = DocumentSecurityStore.read_dss(reader).as_validation_context(kwargs)
    else:
        context = ValidationContext(trust_roots=[root], allow_fetching=False)
        ts_context = ValidationContext(trust_roots=[root], allow_fetching=False)
    return asyncio.run(async_validate_pdf_signature(signature, context, ts_validation_context=ts_context)), reader


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_is_intact_valid_and_trusted(signed, root, level):
    status, reader = _validate(signed[level], root)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.docmdp_ok is not False
    sig = reader.embedded_signatures[0]
    assert sig.docmdp_level == MDPPerm.NO_CHANGES
    assert sig.sig_object["/Name"] == "某市人民政府办公室"
    if level == "B-B":
        assert status.timestamp_validity is None
    else:
        assert status.timestamp_validity is not None and status.timestamp_validity.trusted
        assert status.timestamp_validity.intact and status.timestamp_validity.valid


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_long_term_levels_validate_with_embedded_data_only(signed, root, level):
    status, reader = _validate(signed[level], root, embedded_only=True)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    dss = DocumentSecurityStore.read_dss(reader)
    assert len(dss.ocsps) >= 1 and len(dss.crls) >= 1 and len(list(dss.load_certs())) >= 2


def test_without_embedded_data_hard_fail_validation_fails(signed, root):
    """The control for the test above: a B-T document has no DSS, and the same strict check fails."""
    reader = PdfFileReader(io.BytesIO(signed["B-T"]))
    context = ValidationContext(trust_roots=[root], allow_fetching=False, revocation_mode="hard-fail",
                                ocsps=[], crls=[])
    status = asyncio.run(async_validate_pdf_signature(reader.embedded_signatures[0], context))
    assert not status.trusted


def test_b_lta_has_a_document_timestamp_over_everything(signed, root):
    reader = PdfFileReader(io.BytesIO(signed["B-LTA"]))
    assert len(reader.embedded_signatures) == 2
    timestamp = reader.embedded_signatures[1]
    assert timestamp.sig_object_type == "/DocTimeStamp"
    context = ValidationContext(trust_roots=[root], allow_fetching=False)
    status = asyncio.run(async_validate_pdf_timestamp(timestamp, validation_context=context))
    assert status.intact and status.valid and status.trusted
    assert status.coverage.name == "ENTIRE_FILE"


def test_b_lt_signature_covers_the_whole_file(signed, root):
    """The DSS is written in the signature's own revision: one revision, all of it signed."""
    status, reader = _validate(signed["B-LT"], root)
    assert status.coverage.name == "ENTIRE_FILE"
    assert "/DSS" in reader.root


def test_approval_signature_and_form_filling_certification(platform, agency, seal_record, root):
    spec = sealer(platform).seal(seal_record.serial, agency_id=agency.id, long_term=False)
    approval = sign_pdf(one_page_pdf(), seal=spec, level="B-B")
    reader = PdfFileReader(io.BytesIO(approval))
    assert reader.embedded_signatures[0].docmdp_level is None  # approval, no DocMDP
    form_filling = sign_pdf(one_page_pdf(), seal=spec, level="B-B", certify="form-filling")
    assert PdfFileReader(io.BytesIO(form_filling)).embedded_signatures[0].docmdp_level == MDPPerm.FILL_FORMS
    # A second seal on a form-filling certified document is allowed, and both validate.
    twice = sign_pdf(form_filling, seal=spec, level="B-B")
    for index in (0, 1):
        status, _ = _validate(twice, root, index=index)
        assert status.intact and status.valid and status.trusted


def test_async_api_inside_a_running_loop(platform, agency, seal_record, root):
    spec = sealer(platform).seal(seal_record.serial, agency_id=agency.id, long_term=False)

    async def inside():
        return await async_sign_pdf(one_page_pdf(), seal=spec, level="B-T")

    status, _ = _validate(asyncio.run(inside()), root)
    assert status.valid and status.timestamp_validity is not None


def test_rgb_palette_and_grey_seal_images(platform, agency, seal_record, root):
    require_seal_font()
    spec = sealer(platform).seal(seal_record.serial, agency_id=agency.id, long_term=False)
    for mode in ("RGB", "P", "L"):
        image = png(mode=mode)
        document = sign_pdf(one_page_pdf(), seal=spec, appearance=Appearance(0, 10, 10, 100, 40, image=image))
        status, _ = _validate(document, root)
        assert status.valid
    assert seal_image(png()).image.mode == "RGBA"  # the alpha channel becomes a soft mask


# --- bad input --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seal_spec(platform, agency, seal_record):
    return sealer(platform).seal(seal_record.serial, agency_id=agency.id, long_term=False)


def test_not_a_pdf(seal_spec):
    for garbage in (b"", b"hello world", b"%PDF-1.7\n garbage with no trailer", b"\x89PNG\r\n"):
        with pytest.raises(NotAPdf):
            sign_pdf(garbage, seal=seal_spec)


def test_encrypted_pdf(seal_spec):
    with pytest.raises(EncryptedPdf):
        sign_pdf(one_page_pdf(encrypt="secret"), seal=seal_spec)


def test_already_certified_with_no_changes(signed, seal_spec):
    with pytest.raises(DocumentLocked):
        sign_pdf(signed["B-B"], seal=seal_spec)


def test_page_out_of_range_and_box_off_the_page(seal_spec):
    with pytest.raises(PageOutOfRange):
        sign_pdf(one_page_pdf(), seal=seal_spec, appearance=Appearance(1, 10, 10, 100, 40))
    with pytest.raises(PageOutOfRange):
        sign_pdf(one_page_pdf(), seal=seal_spec, appearance=Appearance(-1, 10, 10, 100, 40))
    for x, y, w, h in ((500, 10, 100, 40), (10, 820, 100, 40), (-1, 10, 100, 40), (10, 10, 0, 40)):
        with pytest.raises(SealBoxOffPage):
            sign_pdf(one_page_pdf(), seal=seal_spec, appearance=Appearance(0, x, y, w, h))


def test_bad_seal_image(seal_spec):
    for image in (b"GIF89a", png()[:40], b"\x89PNG\r\n\x1a\n", png(4097, 1, mode="L")):
        with pytest.raises(InvalidSealImage):
            sign_pdf(one_page_pdf(), seal=seal_spec, appearance=Appearance(0, 10, 10, 100, 40, image=image))


def test_no_seal_key_for_the_agency(platform, agency, seal_record):
    with platform.db.session() as session:
        other = add_agency(session, code="pades-other", name="Other agency", credit_code=None)
    with pytest.raises(NoSealKey):
        sealer(platform).seal(seal_record.serial, agency_id=other.id, long_term=False)  # not its seal
    with pytest.raises(NoSealKey):
        sealer(platform).seal("abcdef", agency_id=agency.id, long_term=False)  # no such certificate


# --- interop: pdfsig (poppler + NSS) ---------------------------------------------------------------


def _pdfsig(nss_db: Path, document: bytes, tmp_path: Path) -> str:
    pdfsig = require_tool("pdfsig")
    path = tmp_path / "signed.pdf"
    path.write_bytes(document)
    # -no-ocsp: the AIA URL points at a server that is not running in the tests.
    result = subprocess.run([pdfsig, "-no-ocsp", "-nssdir", f"sql:{nss_db}", str(path)],
                            capture_output=True, text=True)
    return result.stdout + result.stderr


@pytest.mark.interop
@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT"])
def test_pdfsig_accepts_each_level(signed, nss_db, tmp_path, level):
    report = _pdfsig(nss_db, signed[level], tmp_path)
    assert "Signature is Valid" in report, report
    assert "Total document signed" in report, report
    assert "Certificate is Trusted" in report, report


@pytest.mark.interop
def test_pdfsig_accepts_b_lta(signed, nss_db, tmp_path):
    """The seal signature is valid and trusted; the document timestamp after it signs the rest of the
    file (pdfsig can't check a document timestamp itself, pyHanko does above)."""
    report = _pdfsig(nss_db, signed["B-LTA"], tmp_path)
    seal, timestamp = report.split("Signature #2")
    assert "Signature is Valid" in seal and "Certificate is Trusted" in seal, report
    assert "Not total document signed" in seal  # a later revision holds the document timestamp
    assert "DocTs-" in timestamp


# --- PKCS#11 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hsm_platform(softhsm_token, tmp_path_factory):
    module, label, pin = softhsm_token
    data_dir = tmp_path_factory.mktemp("hsm-pades")
    databases = fresh_database(data_dir)
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=next(databases), key_backend="pkcs11",
                        pkcs11_module=module, pkcs11_token=label, pkcs11_pin=pin)
    initialize_platform(settings)
    platform = Platform.open(settings)
    yield platform
    platform.close()
    databases.close()


@pytest.mark.interop
def test_seal_key_on_pkcs11_signs_a_pdf_that_validates(hsm_platform):
    require_seal_font()
    with hsm_platform.db.session() as session:
        hsm_agency = add_agency(session, code="pades-hsm", name="HSM agency", credit_code=None)
    record = issue_seal(hsm_platform, hsm_agency.id, name="某县人民政府")
    spec = sealer(hsm_platform).seal(record.serial, agency_id=hsm_agency.id, long_term=True)
    assert not isinstance(spec.signer, KeyStoreSigner) and not hasattr(spec.signer, "private_key")
    document = sign_pdf(one_page_pdf(), seal=spec, level="B-LT", certify="no-changes", appearance=BOX)
    root = asn1_x509.Certificate.load(sealer(hsm_platform).root.public_bytes(Encoding.DER))
    status, _ = _validate(document, root, embedded_only=True)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()


# --- interop: the seal font is embedded -------------------------------------------------------------


@pytest.mark.interop
def test_seal_font_is_an_embedded_subset(signed, tmp_path):
    """The agency name is set in WenQuanYi Micro Hei, embedded as a TrueType subset (/FontFile2)."""
    pdffonts = require_tool("pdffonts")
    reader = PdfFileReader(io.BytesIO(signed["B-B"]))
    field = reader.root["/AcroForm"]["/Fields"][0].get_object()
    fonts = field["/AP"]["/N"]["/Resources"]["/Font"]
    font = next(iter(fonts.values())).get_object()
    descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
    program = descriptor["/FontFile2"].get_object().data
    widths = [w for item in font["/DescendantFonts"][0].get_object()["/W"] if isinstance(item, list) for w in item]
    assert max(widths) == 1000  # thousandths of an em (the font has 2048 units an em): a CJK glyph is 1 em
    assert 0 < len(program) < len(SEAL_FONT.read_bytes()) // 10  # a subset, not the whole collection
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed["B-B"])
    listing = subprocess.run([pdffonts, str(path)], capture_output=True, text=True, check=True).stdout
    line = next(line for line in listing.splitlines() if "WenQuanYi" in line)
    assert line.split()[-5:-3] == ["yes", "yes"], listing  # emb, sub


def test_missing_seal_font_is_a_configuration_error(tmp_path):
    with pytest.raises(SealFontMissing):
        _font_program("某", tmp_path / "no-such-font.ttc")
