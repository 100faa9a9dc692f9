"""Test documents: a one-page PDF, PNG seal images, an issued agency seal."""

from __future__ import annotations

import io
import struct
import zlib

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


def png(width: int = 24, height: int = 16, *, alpha: bool = True, filter_type: int = 0) -> bytes:
    """A red PNG (RGBA half transparent, or RGB), every row with PNG filter ``filter_type``."""
    pixel = bytes((200, 0, 0, 128)) if alpha else bytes((200, 0, 0))
    raw_row = pixel * width
    rows = []
    for _ in range(height):
        if filter_type == 1:  # Sub: each byte minus the one bpp to its left
            bpp = len(pixel)
            row = bytes((raw_row[i] - (raw_row[i - bpp] if i >= bpp else 0)) & 0xFF for i in range(len(raw_row)))
        else:
            row = raw_row
        rows.append(bytes((filter_type,)) + row)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def issue_seal(platform, agency_id: int, name: str = "某市人民政府办公室"):
    """An agency-seal certificate with its key kept by the platform; returns the record."""
    with platform.db.session() as session:
        issued = platform.ca.issue(SqlCaStore(session), profile_name="agency-seal", requested_by=agency_id,
                                   subject=SubjectIdentity(SubjectKind.AGENCY, name, credit_code()))
    return issued.record
