"""``eauth sign``: the installed entry point, in its own process, on the session platform's database."""

from __future__ import annotations

import asyncio
import io

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from api.documents import sealer
from store.agencies import add_agency
from tests.api.test_cli import assert_one_line_error
from tests.api.test_crl_cli import _eauth
from tests.conftest import require_seal_font
from tests.pdf_helpers import issue_seal, one_page_pdf, png


def test_sign_b_lta_certified_with_a_visible_seal(platform, agency, tmp_path):
    require_seal_font()
    record = issue_seal(platform, agency.id, name="命令行盖章机关")
    (tmp_path / "doc.pdf").write_bytes(one_page_pdf())
    (tmp_path / "seal.png").write_bytes(png())
    result = _eauth(platform, tmp_path, "sign", "doc.pdf", "--seal", record.serial, "--level", "B-LTA",
                    "--certify", "no-changes", "--box", "380,40,180,60", "--image", "seal.png",
                    "--agency", agency.code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "doc.signed.pdf" in result.stdout
    reader = PdfFileReader(io.BytesIO((tmp_path / "doc.signed.pdf").read_bytes()))
    signature = reader.embedded_signatures[0]
    assert signature.docmdp_level == MDPPerm.NO_CHANGES
    assert reader.embedded_signatures[1].sig_object_type == "/DocTimeStamp"
    root = asn1_x509.Certificate.load(sealer(platform).root.public_bytes(Encoding.DER))
    status = asyncio.run(async_validate_pdf_signature(signature, ValidationContext(trust_roots=[root],
                                                                                   allow_fetching=False)))
    assert status.intact and status.valid and status.trusted
    # Not overwritten by a second run; bad input is one line on stderr.
    again = _eauth(platform, tmp_path, "sign", "doc.pdf", "--seal", record.serial)
    assert_one_line_error(again, "already exists")
    (tmp_path / "junk.pdf").write_bytes(b"junk")
    assert_one_line_error(_eauth(platform, tmp_path, "sign", "junk.pdf", "--seal", record.serial), "not_a_pdf")
    assert_one_line_error(_eauth(platform, tmp_path, "sign", "doc.pdf", "--seal", record.serial, "--level", "B-Q",
                                 "--out", "x.pdf"), "invalid_input")


def test_sign_refuses_another_agencys_seal(platform, agency, tmp_path):
    record = issue_seal(platform, agency.id)
    with platform.db.session() as session:
        other = add_agency(session, code="sign-cli-other", name="Other", credit_code=None)
    (tmp_path / "doc.pdf").write_bytes(one_page_pdf())
    result = _eauth(platform, tmp_path, "sign", "doc.pdf", "--seal", record.serial, "--agency", other.code)
    assert_one_line_error(result, "no_seal_key")
    assert not (tmp_path / "doc.signed.pdf").exists()
