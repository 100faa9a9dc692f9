"""Test documents: a one-page PDF, PNG seal images, an issued agency seal."""

from __future__ import annotations

import io

from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from ca.profiles import SubjectKind
from ca.subjects import SubjectIdentity
from store.ca_store import SqlCaStore
from tests.helpers import credit_code


def one_page_pdf(*, encrypt: str | None = None, padding: int = 0) -> bytes:
    """An A4 page with a line of text (Helvetica), optionally encrypted with user password ``encrypt``,
    its content stream lengthened by a comment of ``padding`` bytes."""
    writer = PdfFileWriter()
    font = generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Font"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
        generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
    })
    resources = generic.DictionaryObject({
        generic.pdf_name("/Font"): generic.DictionaryObject({generic.pdf_name("/F1"): writer.add_object(font)})
    })
    content = writer.add_object(generic.StreamObject(stream_data=(b"%" + b"x" * padding + b"\n" if padding else b"")
                                                      + b"BT /F1 14 Tf 72 760 Td (Official document) Tj ET"))
    writer.insert_page(PageObject(contents=content, media_box=(0, 0, 595, 842), resources=resources))
    if encrypt is not None:
        writer.encrypt(encrypt, encrypt)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png(width: int = 24, height: int = 16, *, mode: str = "RGBA") -> bytes:
    """A red PNG made by Pillow: half transparent (RGBA), opaque (RGB), or a palette image (P)."""
    colour = {"RGBA": (200, 0, 0, 128), "RGB": (200, 0, 0), "P": 0, "L": 100}[mode]
    image = Image.new(mode, (width, height), colour)
    if mode == "P":
        image.putpalette([200, 0, 0] * 256)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def issue_seal(platform, agency_id: int, name: str = "某市人民政府办公室"):
    """An agency-seal certificate with its key kept by the platform; returns the record."""
    with platform.db.session() as session:
        issued = platform.ca.issue(SqlCaStore(session), profile_name="agency-seal", requested_by=agency_id,
                                   subject=SubjectIdentity(SubjectKind.AGENCY, name, credit_code()))
    return issued.record
