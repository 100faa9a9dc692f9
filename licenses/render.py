"""An electronic license (电子证照) as a one-page A4 PDF: title, identifier, field table, issuer block
with the agency's seal, and a QR code that leads to the public verification page.

reportlab writes the document (objects, page, graphics, compression); the text is WenQuanYi Micro Hei
(Debian ``fonts-wqy-microhei``) embedded as one subset CID font (Type 0, Identity-H, a ToUnicode map
so that text can be copied and searched); the QR code is vector shapes, never a bitmap (a PNG through
``ImageReader`` per document made rendering ~4× slower, see DESIGN.md).

Speed is the point here (bulk conversion renders millions of these), so what can be done once per
process is: the font is parsed once, each glyph's outline is cut out of it once, a seal PNG is decoded
and compressed once per SHA-256, and the fixed parts of each QR version (function patterns, data
placement, masks) are computed once. Measured with cProfile, reportlab's own TrueType embedding cost
most of a page: it writes a separate simple font per 256 characters, copies the whole 3.5 MB ``glyf``
table for each, and draws text through per-line Python formatting; the embedding here writes one font
per page and the text operators with ``str.translate``. The QR symbol is qrcode's (same segmentation,
version, Reed-Solomon code words, mask choice and module matrix, checked against
``qrcode.QRCode.get_matrix`` in the tests), built with integer bit operations instead of qrcode's
per-module Python loops (~35 ms a symbol).

The output is deterministic: the same document gives the same bytes (the PDF dates are the issue
date, reportlab runs in invariant mode, the subset tag is a digest of the glyphs in the subset).
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import io
import math
import re
import threading
import zlib
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import date
from itertools import accumulate, chain, compress, repeat
from operator import add, itemgetter, rshift
from pathlib import Path
from struct import Struct, pack, unpack_from

import qrcode
from qrcode import LUT as qr_lut
from qrcode import base as qr_base
from qrcode import util as qr_util
from qrcode.constants import ERROR_CORRECT_M
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import TimeStamp
from reportlab.pdfbase import pdfdoc, pdfmetrics, ttfonts
from reportlab.pdfgen.canvas import Canvas

try:
    from isal.isal_zlib import compress as _isal_compress

    def _compress(data: bytes) -> bytes:
        return _isal_compress(data, 2)
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same format, slower
    def _compress(data: bytes) -> bytes:
        return zlib.compress(data, 1)

from eauth.errors import (
    LicenseContentTooLong,
    QrCodeTooLarge,
    SealFontMissing,
    UnrenderableCharacter,
)
from signing.pades import open_seal_png

__all__ = ["LICENSE_FONT", "MAX_QR_VERSION", "LicenseDocument", "qr_version", "render_license"]

#: WenQuanYi Micro Hei, the first font of the collection (Debian ``fonts-wqy-microhei``).
LICENSE_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
#: Largest QR version printed: at the fixed QR size it keeps a module ≥ 1.7 pt (≥ 3.5 px at 150 dpi).
MAX_QR_VERSION = 15


@dataclass(frozen=True, slots=True)
class LicenseDocument:
    """What one license page shows. Text is checked against the font before anything is drawn."""

    title_zh: str  # the license type's name, e.g. "营业执照"
    title_en: str  # e.g. "Business License"
    identifier: str  # GB/T 36904-style license identifier
    holder_name: str  # the person or enterprise the license is issued to
    fields: tuple[tuple[str, str], ...]  # (label, value) in display order; long values wrap, "\n" breaks
    issuer_name: str  # the issuing agency, e.g. "某市市场监督管理局"
    issued_on: date  # also the PDF's creation date, so the same document renders to the same bytes
    valid_until: date | None  # None: long-term (长期)
    qr_url: str  # the public verification URL with its compact JWS, encoded at error correction M
    seal_image: bytes | None = None  # the agency's seal as a PNG; None draws a vector red round seal
    version: int = 1  # the license version (an amendment makes a new one)


def render_license(document: LicenseDocument) -> bytes:
    """The license as a one-page A4 PDF (deterministic for a given ``document``).

    Raises ``UnrenderableCharacter`` (naming the field) for a character the font has no glyph for,
    ``LicenseContentTooLong`` when the fields do not fit on the page even in the smallest type,
    ``QrCodeTooLarge`` for a URL needing a QR version above ``MAX_QR_VERSION``, ``InvalidSealImage``
    for a seal that is not a usable PNG, ``SealFontMissing`` without the font.
    """
    font = _font()
    document = _normalized(document)
    _check_glyphs(document, font)
    qr = _qr_rows(document.qr_url)
    seal = _prepared_seal(document.seal_image) if document.seal_image is not None else None
    # Decide the layout before opening the canvas: an error leaves nothing half-drawn.
    table = _table_layout(document.fields, font)

    buffer = io.BytesIO()
    use_a85 = rl_config.useA85
    rl_config.useA85 = 0  # ASCII85 only makes streams 25% bigger and costs time
    try:
        canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1, initialFontName=font.name)
        _set_metadata(canvas, document)
        text = _Text(font)
        _draw_page(canvas, text, document, table, qr, seal)
        text.embed(canvas._doc)
        canvas.showPage()
        canvas.save()
    finally:
        rl_config.useA85 = use_a85
    return buffer.getvalue()


def qr_version(url: str) -> int:
    """The QR version qrcode picks for ``url`` at error correction M (what the license prints).

    Callers keep the token short enough for phones to scan from paper (e.g. version ≤ 12)."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M)
    code.add_data(url)
    return code.best_fit()


# --- font ------------------------------------------------------------------------------------------

#: Text the page adds itself (labels, caption, dates): checked against the font once.
_FIXED_TEXT = ("证照编号持证主体发证机关发证日期有效期至长期年月日第版扫码核验 Scan to verify Version No. Holder "
               "Issuer Long-term：:/0123456789")


class _FlateFast:
    """A Flate filter for reportlab streams through ISA-L (``isal``) at its level 2: for the ~50 KB
    font program of a page, 0.2 ms where zlib takes 1.4 ms at level 1 and 2.7 ms at level 6, for
    about the size of zlib's level 1 (measured here). zlib level 1 if isal is not installed."""

    pdfname = "FlateDecode"

    def encode(self, data: bytes | str) -> bytes:
        return _compress(data.encode("latin-1") if isinstance(data, str) else data)


_FLATE_FAST = _FlateFast()


class _LicenseFont:
    """WenQuanYi Micro Hei as parsed by reportlab, with what a page needs prepared once: widths by
    character, glyph outlines, the tables a subset copies unchanged."""

    name = "WQYMicroHei"

    def __init__(self, path: Path) -> None:
        # Registered with reportlab only so that the canvas starts in it rather than in Helvetica (which
        # it would reference, unembedded); reportlab never draws text in it here.
        reportlab_font = ttfonts.TTFont(self.name, str(path), subfontIndex=0, shapable=False)
        pdfmetrics.registerFont(reportlab_font)
        face = self.face = reportlab_font.face
        self.cmap: dict[int, int] = face.charToGlyph  # code point → glyph id
        units = unpack_from(">H", face.get_table("head"), 18)[0]
        metrics_count = unpack_from(">H", face.get_table("hhea"), 34)[0]
        last_advance = face.hmetrics[metrics_count - 1][0]
        # reportlab keeps scaled advances for glyphs past numberOfHMetrics: use the font's own.
        self.hmetrics = [(int(aw) if g < metrics_count else last_advance, int(lsb))
                         for g, (aw, lsb) in enumerate(face.hmetrics)]
        self.glyph_width = [round(aw * 1000 / units) for aw, _ in self.hmetrics]  # thousandths of an em
        self.char_width = {chr(code): self.glyph_width[glyph] for code, glyph in self.cmap.items()}
        start, length = face.get_table_pos("glyf")
        self._glyf = memoryview(face._ttf_data)[start:start + length]
        self._records = _Cache(self._glyph)  # glyph id → _glyph(glyph id), each cut out of the font once
        self._copied = {tag: face.get_table(tag) for tag in ("name", "OS/2", "cvt ", "fpgm", "prep")
                        if tag in face.table}
        self._post = b"\x00\x03\x00\x00" + face.get_table("post")[4:16] + b"\x00" * 16
        self._hhea, self._maxp, self._head = face.get_table("hhea"), face.get_table("maxp"), face.get_table("head")
        self.postscript_name = face.name.decode("latin-1") if isinstance(face.name, bytes) else str(face.name)

    def width(self, text: str) -> int:
        """Advance of ``text`` in thousandths of an em (every character is in the font: checked)."""
        return sum(map(self.char_width.__getitem__, text))

    def _glyph(self, glyph: int) -> tuple[bytes, tuple[int, ...], Struct | None, tuple[bytes, ...]]:
        """A glyph's outline padded to 4 bytes; for a composite glyph also its components' glyph ids,
        and the outline cut around them with the ``Struct`` that puts it back with other ids."""
        positions = self.face.glyphPos
        data = bytes(self._glyf[positions[glyph]:positions[glyph + 1]])
        data += b"\0" * (-len(data) % 4)
        if len(data) <= 2 or unpack_from(">h", data)[0] >= 0:
            return data, (), None, ()
        refs = _component_refs(data)
        cuts = [0, *chain.from_iterable((at, at + 2) for _, at in refs), len(data)]
        segments = tuple(data[start:end] for start, end in zip(cuts[0::2], cuts[1::2]))
        layout = Struct(">" + "H".join(f"{len(segment)}s" for segment in segments))
        return data, tuple(index for index, _ in refs), layout, segments

    def subset(self, glyphs: list[int]) -> tuple[bytes, int]:
        """A TrueType program holding ``glyphs`` as glyph ids 0, 1, 2… (CID = glyph id, so no cmap
        table: PDF maps codes to glyphs itself), then the components of composite glyphs. A glyph
        listed twice (two characters drawn alike) is there twice. Returns the program and how many
        glyphs it has."""
        order = list(glyphs)
        new_id = dict(zip(reversed(order), range(len(order) - 1, -1, -1)))  # the first CID of each glyph
        records = list(map(self._records.__getitem__, order))
        composites = list(compress(range(len(records)), map(itemgetter(1), records)))
        for n in composites:  # components come along, after the CIDs (and theirs, in turn)
            for part in records[n][1]:
                if part not in new_id:
                    new_id[part] = len(order)
                    order.append(part)
                    records.append(self._records[part])
                    if records[-1][1]:
                        composites.append(len(records) - 1)
        pieces = list(map(itemgetter(0), records))
        for n in composites:  # their components' ids, renumbered
            _, parts, layout, segments = records[n]
            if len(parts) == 2:  # most of them
                pieces[n] = layout.pack(segments[0], new_id[parts[0]], segments[1], new_id[parts[1]], segments[2])
            else:
                pieces[n] = layout.pack(*chain.from_iterable(zip(segments, map(new_id.__getitem__, parts))),
                                        segments[-1])
        offsets = list(accumulate(map(len, pieces), initial=0))
        output = ttfonts.TTFontMaker()
        for tag, table in self._copied.items():
            output.add(tag, table)
        output.add("post", self._post)
        output.add("glyf", b"".join(pieces))
        if offsets[-1] > 0x1FFFE:
            output.add("loca", pack(f">{len(offsets)}L", *offsets))
            location_format = 1
        else:
            output.add("loca", pack(f">{len(offsets)}H", *map(rshift, offsets, repeat(1))))
            location_format = 0
        metrics = itemgetter(*order)(self.hmetrics) if len(order) > 1 else (self.hmetrics[order[0]],)
        output.add("hmtx", pack(f">{2 * len(order)}H", *chain.from_iterable(metrics)))
        output.add("hhea", ttfonts._set_ushort(self._hhea, 34, len(order)))
        output.add("maxp", ttfonts._set_ushort(self._maxp, 4, len(order)))
        output.add("head", ttfonts._set_ushort(self._head, 50, location_format))
        return output.makeStream(), len(order)


class _Cache(dict):
    """A dict that computes a missing value with ``function`` (and keeps it)."""

    def __init__(self, function) -> None:
        super().__init__()
        self._function = function

    def __missing__(self, key):
        value = self[key] = self._function(key)
        return value


def _component_refs(data: bytes) -> list[tuple[int, int]]:
    """(glyph id, offset of that id) of each component of a composite glyph's outline."""
    refs, at, flags = [], 10, ttfonts.GF_MORE_COMPONENTS
    while flags & ttfonts.GF_MORE_COMPONENTS:
        flags, index = unpack_from(">HH", data, at)
        refs.append((index, at + 2))
        at += 4 + (4 if flags & ttfonts.GF_ARG_1_AND_2_ARE_WORDS else 2)
        if flags & ttfonts.GF_WE_HAVE_A_SCALE:
            at += 2
        elif flags & ttfonts.GF_WE_HAVE_AN_X_AND_Y_SCALE:
            at += 4
        elif flags & ttfonts.GF_WE_HAVE_A_TWO_BY_TWO:
            at += 8
    return refs


@functools.cache
def _font() -> _LicenseFont:
    """The license font, parsed once per process (~0.3 s)."""
    if not LICENSE_FONT.is_file():
        raise SealFontMissing(f"the license font {LICENSE_FONT} is not installed (Debian package fonts-wqy-microhei)")
    font = _LicenseFont(LICENSE_FONT)
    missing = {c for c in _FIXED_TEXT if ord(c) not in font.cmap}
    if missing:
        raise SealFontMissing(f"the license font {LICENSE_FONT} lacks {''.join(sorted(missing))!r}")
    return font


def _normalized(document: LicenseDocument) -> LicenseDocument:
    """Field values with line ends as "\\n" and tabs as spaces (as a CSV import may bring them)."""
    fields = tuple((label, value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
                   for label, value in document.fields)
    return document if fields == document.fields else replace(document, fields=fields)


def _check_glyphs(document: LicenseDocument, font: _LicenseFont) -> None:
    """Refuse any character the font cannot draw (it would print as an empty box), naming the field."""
    texts = [("title_zh", document.title_zh), ("title_en", document.title_en),
             ("identifier", document.identifier), ("holder_name", document.holder_name),
             ("issuer_name", document.issuer_name)]
    for label, value in document.fields:
        texts.append((f"field label {label!r}", label))
        texts.append((f"field {label!r}", value.replace("\n", " ")))
    drawable = font.char_width.keys()
    if drawable >= set().union(*(text for _, text in texts)):
        return  # the usual case, decided in C; else find and name the first missing character
    for field, text in texts:
        for position, character in enumerate(text):
            if character not in drawable:
                raise UnrenderableCharacter(
                    f"{field}: the character {character!r} (U+{ord(character):04X}) at position {position} "
                    f"has no glyph in the license font (WenQuanYi Micro Hei)",
                    field=field, character=character, position=position,
                )


class _Text:
    """The page's text: operators for the content stream, and the characters used, numbered as CIDs
    in the order they first appear (deterministic) for the font embedded at the end."""

    resource = "FL"  # the font's name in the page resources (reportlab's own are F1, F2…)

    def __init__(self, font: _LicenseFont) -> None:
        self.font = font
        self.glyphs = [0]  # CID → glyph id in the font; CID 0 is .notdef
        self.unicode = [""]  # CID → its character (ToUnicode)
        self._hex: dict[int, str] = {}  # code point → its CID as 4 hex digits, for str.translate
        self._known: set[str] = set()

    def encode(self, text: str) -> str:
        """``text`` as a PDF hex string of 2-byte CIDs, numbering new characters (one CID each)."""
        if not self._known.issuperset(text):
            new = sorted(set(text) - self._known)
            self._known.update(new)
            start = len(self.unicode)
            self.unicode.extend(new)
            self.glyphs.extend(map(self.font.cmap.__getitem__, map(ord, new)))
            self._hex.update(zip(map(ord, new), map("{:04X}".format, range(start, start + len(new)))))
        return "<" + text.translate(self._hex) + ">"

    def line(self, x: float, y: float, size: float, text: str, *, align: str = "left",
             spacing: float = 0.0) -> str:
        """Operators for one line at (x, y) in ``size`` points, left, centre or right aligned;
        ``spacing`` adds that much after each character but the last."""
        if align != "left":
            width = self.font.width(text) * size / 1000 + spacing * max(len(text) - 1, 0)
            x -= width / 2 if align == "centre" else width
        prefix = f"{spacing:.2f} Tc " if spacing else ""
        suffix = " 0 Tc" if spacing else ""
        return (f"BT /{self.resource} {size:.2f} Tf {prefix}1 0 0 1 {x:.2f} {y:.2f} Tm "
                f"{self.encode(text)} Tj{suffix} ET")

    def embed(self, doc: pdfdoc.PDFDocument) -> None:
        """Add the font (Type 0 over a CIDFontType2 subset) to the document as ``resource``."""
        font = self.font
        program, _ = font.subset(self.glyphs)
        # The subset tag: six letters that change with the glyphs (which decide the program).
        digest = hashlib.sha256(pack(f">{len(self.glyphs)}H", *self.glyphs)).digest()
        base = "".join(chr(65 + b % 26) for b in digest[:6]) + "+" + font.postscript_name
        face = font.face
        font_file = pdfdoc.PDFStream(content=program, filters=[_FLATE_FAST])
        font_file.dictionary["Length1"] = len(program)
        bbox = " ".join(str(round(v)) for v in face.bbox)
        descriptor = _Raw(
            f"<< /Type /FontDescriptor /FontName /{base} /Flags 4 /FontBBox [ {bbox} ] "  # 4: symbolic
            f"/ItalicAngle {face.italicAngle:g} /Ascent {round(face.ascent)} /Descent {round(face.descent)} "
            f"/CapHeight {round(face.capHeight)} /StemV {face.stemV} /FontFile2 {{file}} >>",
            file=doc.Reference(font_file))
        widths = _widths([font.glyph_width[glyph] for glyph in self.glyphs]).decode("ascii")
        cid_font = _Raw(
            f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{base} "
            f"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
            f"/FontDescriptor {{descriptor}} /CIDToGIDMap /Identity /DW {_DEFAULT_WIDTH} /W {widths} >>",
            descriptor=doc.Reference(descriptor))
        to_unicode = pdfdoc.PDFStream(content=_to_unicode(self.unicode), filters=[_FLATE_FAST])
        type0 = _Raw(
            f"<< /Type /Font /Subtype /Type0 /BaseFont /{base} /Encoding /Identity-H "
            f"/DescendantFonts [ {{cid_font}} ] /ToUnicode {{to_unicode}} >>",
            cid_font=doc.Reference(cid_font), to_unicode=doc.Reference(to_unicode))
        doc.idToObject[pdfdoc.BasicFonts].dict[self.resource] = doc.Reference(type0, "eauthLicenseFont")


class _Raw(pdfdoc.PDFObject):
    """A PDF object written from a template, with the references in it resolved when the document
    is written: reportlab's generic dictionaries cost ~0.1 ms each to format, these a few µs."""

    def __init__(self, template: str, **references: pdfdoc.PDFObjectReference) -> None:
        self.template, self.references = template, references

    def format(self, document) -> bytes:
        resolved = {name: reference.format(document).decode("ascii")
                    for name, reference in self.references.items()}
        return self.template.format(**resolved).encode("ascii")


_DEFAULT_WIDTH = 1000  # a full-width CJK character: most of them, left out of /W


def _widths(widths: list[int]) -> bytes:
    """The CIDFont's /W array: runs of consecutive CIDs whose width is not the default."""
    runs, run = [], []
    for cid, width in enumerate(widths):
        if width != _DEFAULT_WIDTH:
            if not run:
                run.append(str(cid))
                run.append("[")
            run.append(str(width))
        elif run:
            runs.append(" ".join(run) + " ]")
            run = []
    if run:
        runs.append(" ".join(run) + " ]")
    return ("[ " + " ".join(runs) + " ]").encode("ascii")


class _Utf16Hex(dict):
    """Character → its UTF-16BE code units in hex, computed on first use."""

    def __missing__(self, character: str) -> str:
        value = self[character] = character.encode("utf-16-be").hex().upper()
        return value


_UTF16_HEX = _Utf16Hex()


def _to_unicode(characters: list[str]) -> bytes:
    """The ToUnicode CMap: CID i → ``characters[i]`` (CID 0, .notdef, maps to nothing)."""
    entries = list(map("<{:04X}> <{}>".format, range(1, len(characters)),
                       map(_UTF16_HEX.__getitem__, characters[1:])))
    blocks = []
    for start in range(0, len(entries), 100):  # at most 100 entries a block
        chunk = entries[start:start + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar")
    return ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n" + "\n".join(blocks) +
            "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n").encode("ascii")


# --- layout ----------------------------------------------------------------------------------------

_PAGE_WIDTH, _PAGE_HEIGHT = A4
_LEFT, _RIGHT = 62.0, _PAGE_WIDTH - 62.0
_LABEL_WIDTH = 118.0
_PAD = 5.0  # cell padding
_TABLE_TOP = 676.0
_TABLE_BOTTOM = 250.0  # above the issuer block and the QR code
_TYPE_SIZES = (10.5, 9.5, 8.5, 7.5, 6.5)  # tried in turn until the table fits
_QR_SIZE = 132.0  # points, without the quiet zone: ≥ 4 modules of white page around it (caption below it)
_QR_X, _QR_Y = _LEFT + 8, 76.0
_INK = (0.1, 0.1, 0.1)
_FRAME = (0.55, 0.12, 0.12)
_SEAL_RED = (0.86, 0.08, 0.08)

#: Characters that must not begin a line: they hang at the end of the previous one instead.
_NO_LINE_START = frozenset("，。、；：！？）》」』】〉”’,.;:!?)]}%")
#: Latin words and numbers stay together when the line breaks.
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@#&+-./")


@dataclass(frozen=True, slots=True)
class _Row:
    label: tuple[str, ...]
    value: tuple[str, ...]
    height: float


@dataclass(frozen=True, slots=True)
class _Table:
    size: float
    leading: float
    rows: tuple[_Row, ...]


def _table_layout(fields: tuple[tuple[str, str], ...], font: _LicenseFont) -> _Table:
    """Field rows wrapped to the columns, in the largest type size for which the table fits."""
    value_width = _RIGHT - _LEFT - _LABEL_WIDTH - 2 * _PAD
    label_width = _LABEL_WIDTH - 2 * _PAD
    total = 0.0
    for size in _TYPE_SIZES:
        leading = size * 1.45
        rows, total = [], 0.0
        for label, value in fields:
            label_lines = _wrap(label, label_width * 1000 / size, font)
            value_lines = _wrap(value, value_width * 1000 / size, font)
            height = max(len(label_lines), len(value_lines)) * leading + 2 * _PAD
            rows.append(_Row(tuple(label_lines), tuple(value_lines), height))
            total += height
        if total <= _TABLE_TOP - _TABLE_BOTTOM:
            return _Table(size, leading, tuple(rows))
    raise LicenseContentTooLong(
        f"the {len(fields)} fields need {total:.0f} pt at {_TYPE_SIZES[-1]} pt type; "
        f"the page has {_TABLE_TOP - _TABLE_BOTTOM:.0f} pt",
        needed=round(total), available=_TABLE_TOP - _TABLE_BOTTOM,
    )


def _wrap(text: str, limit: float, font: _LicenseFont) -> list[str]:
    """Lines at most ``limit`` thousandths of an em wide: breaks anywhere between CJK characters,
    between Latin words only (a word longer than a line is cut), never before closing punctuation
    (it hangs in the margin), and at every "\\n".

    The break of each line is found by bisecting the paragraph's running width (C-level), not by
    adding characters one at a time."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        size = len(paragraph)
        ends = list(accumulate(map(font.char_width.__getitem__, paragraph), initial=0))
        if ends[-1] <= limit:
            lines.append(paragraph)
            continue
        start = 0
        while start < size:
            end = max(bisect_right(ends, ends[start] + limit) - 1, start + 1)  # as much as fits, ≥ 1
            if end < size:
                if paragraph[end] in _NO_LINE_START:
                    while end < size and paragraph[end] in _NO_LINE_START:
                        end += 1
                elif paragraph[end] in _WORD and paragraph[end - 1] in _WORD:  # inside a word
                    word_start = end
                    while word_start > start and paragraph[word_start - 1] in _WORD:
                        word_start -= 1
                    if word_start > start:
                        end = word_start
            lines.append(paragraph[start:end].rstrip())
            start = end
            while start < size and paragraph[start] == " ":
                start += 1
    return lines


def _fit(font: _LicenseFont, text: str, size: float, width: float) -> float:
    """``size``, or the smaller size at which ``text`` is ``width`` points wide (never below 5 pt)."""
    natural = font.width(text) * size / 1000
    return size if natural <= width else max(5.0, size * width / natural)


def _date_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _set_metadata(canvas: Canvas, document: LicenseDocument) -> None:
    """Title, author and dates in the document information: the dates are the issue date (00:00 UTC),
    so that nothing in the file depends on when it was rendered."""
    canvas.setTitle(f"{document.title_zh} {document.identifier}")
    canvas.setSubject(document.title_en)
    canvas.setAuthor(document.issuer_name)
    canvas.setCreator("eauth")
    canvas.setProducer("eauth")
    stamp = TimeStamp(invariant=1)
    stamp.t = calendar.timegm(document.issued_on.timetuple())
    stamp.lt = (document.issued_on.year, document.issued_on.month, document.issued_on.day, 0, 0, 0)
    stamp.YMDhms = stamp.lt
    canvas._doc._timeStamp = stamp  # reportlab writes CreationDate and ModDate from it


def _draw_page(canvas: Canvas, text: _Text, document: LicenseDocument, table: _Table, qr: _QrRows,
               seal: _PreparedImage | None) -> None:
    # Frame: a double rule.
    canvas.setStrokeColorRGB(*_FRAME)
    canvas.setLineWidth(2.2)
    canvas.rect(30, 30, _PAGE_WIDTH - 60, _PAGE_HEIGHT - 60)
    canvas.setLineWidth(0.6)
    canvas.rect(36, 36, _PAGE_WIDTH - 72, _PAGE_HEIGHT - 72)

    # Title (zh large and spaced, en small), identifier, holder; each shrunk to the width if need be.
    canvas.setFillColorRGB(*_INK)
    centre, width, font = _PAGE_WIDTH / 2, _RIGHT - _LEFT, text.font
    title = document.title_zh
    spacing = 15.0 if len(title) <= 6 else 0.0
    title_size = _fit(font, title, 30.0, width - spacing * max(len(title) - 1, 0))
    identifier = f"证照编号 No. {document.identifier}"
    holder = f"持证主体 Holder：{document.holder_name}"
    canvas.addLiteral("\n".join([
        text.line(centre, 760, title_size, title, align="centre", spacing=spacing),
        text.line(centre, 738, _fit(font, document.title_en, 12.0, width), document.title_en, align="centre"),
        text.line(centre, 716, _fit(font, identifier, 9.0, width), identifier, align="centre"),
        text.line(_LEFT, _TABLE_TOP + 10, _fit(font, holder, 12.0, width), holder),
    ]))

    _draw_table(canvas, text, table)
    issuer_x, issuer_y = _draw_issuer(canvas, text, document)
    if seal is not None:
        _draw_seal_image(canvas, seal, issuer_x, issuer_y)
    else:
        _draw_vector_seal(canvas, text, document.issuer_name, issuer_x, issuer_y)
    _draw_qr(canvas, qr)

    canvas.setFillColorRGB(*_INK)
    canvas.addLiteral("\n".join([
        text.line(_QR_X + _QR_SIZE / 2, _QR_Y - 18, 8, "扫码核验 / Scan to verify", align="centre"),
        text.line(_RIGHT, 46, 8, f"第 {document.version} 版 Version {document.version}", align="right"),
    ]))


def _draw_table(canvas: Canvas, text: _Text, table: _Table) -> None:
    size, leading = table.size, table.leading
    top = _TABLE_TOP
    bottom = top - sum(row.height for row in table.rows)
    split = _LEFT + _LABEL_WIDTH
    canvas.setFillColorRGB(0.95, 0.95, 0.93)
    canvas.rect(_LEFT, bottom, _LABEL_WIDTH, top - bottom, stroke=0, fill=1)
    canvas.setStrokeColorRGB(0.45, 0.45, 0.45)
    canvas.setLineWidth(0.5)
    rules = [(_LEFT, top, _RIGHT, top), (_LEFT, bottom, _RIGHT, bottom),
             (_LEFT, top, _LEFT, bottom), (_RIGHT, top, _RIGHT, bottom), (split, top, split, bottom)]
    y = top
    for row in table.rows[:-1]:
        y -= row.height
        rules.append((_LEFT, y, _RIGHT, y))
    canvas.lines(rules)

    # One text object: each line placed with its own text matrix.
    canvas.setFillColorRGB(*_INK)
    encode = text.encode
    ops = [f"BT /{text.resource} {size:.2f} Tf"]
    y = top - _PAD - size * 0.86  # first baseline below the cell's top edge
    for row in table.rows:
        for x, lines in ((_LEFT + _PAD, row.label), (split + _PAD, row.value)):
            for index, line in enumerate(lines):
                ops.append(f"1 0 0 1 {x:.2f} {y - index * leading:.2f} Tm {encode(line)} Tj")
        y -= row.height
    ops.append("ET")
    canvas.addLiteral("\n".join(ops))


def _draw_issuer(canvas: Canvas, text: _Text, document: LicenseDocument) -> tuple[float, float]:
    """The issuer, issue date and validity, right-aligned; returns the seal's centre."""
    right = _RIGHT - 6
    issuer_size = _fit(text.font, document.issuer_name, 13.0, 250.0)
    width = text.font.width(document.issuer_name) * issuer_size / 1000
    valid = "长期 Long-term" if document.valid_until is None else _date_zh(document.valid_until)
    canvas.setFillColorRGB(*_INK)
    canvas.addLiteral("\n".join([
        text.line(right, 198, 9, "发证机关 Issuer", align="right"),
        text.line(right, 180, issuer_size, document.issuer_name, align="right"),
        text.line(right, 156, 11, f"发证日期：{_date_zh(document.issued_on)}", align="right"),
        text.line(right, 138, 11, f"有效期至：{valid}", align="right"),
    ]))
    return right - min(width, 250) / 2, 172.0


# --- seal ------------------------------------------------------------------------------------------

_SEAL_RADIUS = 50.0


def _draw_vector_seal(canvas: Canvas, text: _Text, agency: str, cx: float, cy: float) -> None:
    """A red round seal: a ring, a five-pointed star, the agency's name along the upper arc."""
    canvas.saveState()
    canvas.setFillAlpha(0.85)
    canvas.setStrokeAlpha(0.85)
    canvas.setStrokeColorRGB(*_SEAL_RED)
    canvas.setFillColorRGB(*_SEAL_RED)
    canvas.setLineWidth(3.0)
    canvas.circle(cx, cy, _SEAL_RADIUS, stroke=1, fill=0)
    star = canvas.beginPath()
    outer, inner = _SEAL_RADIUS * 0.34, _SEAL_RADIUS * 0.34 * 0.382
    for k in range(10):
        radius = outer if k % 2 == 0 else inner
        angle = math.pi / 2 + k * math.pi / 5
        point = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
        if k == 0:
            star.moveTo(*point)
        else:
            star.lineTo(*point)
    star.close()
    canvas.drawPath(star, stroke=0, fill=1)
    # The name on an arc of up to 240° centred on the top, upright characters facing outwards.
    count = len(agency)
    if count:
        text_radius = _SEAL_RADIUS * 0.74
        span = min(240.0, 24.0 * count)
        size = min(14.0, max(6.0, 2 * math.pi * text_radius * (span / 360) / count * 0.9))
        step = span / count
        ops = [f"BT /{text.resource} {size:.2f} Tf"]
        for index, character in enumerate(agency):
            angle = math.radians(-span / 2 + step * (index + 0.5))  # clockwise from the top
            cos, sin = math.cos(angle), math.sin(angle)
            # The character's own frame is rotated by -angle; centre it on the arc.
            dx, dy = -text.font.width(character) * size / 2000, -size * 0.38
            x = cx + text_radius * sin + dx * cos + dy * sin
            y = cy + text_radius * cos - dx * sin + dy * cos
            ops.append(f"{cos:.4f} {-sin:.4f} {sin:.4f} {cos:.4f} {x:.2f} {y:.2f} Tm {text.encode(character)} Tj")
        ops.append("ET")
        canvas.addLiteral("\n".join(ops))
    canvas.restoreState()


@dataclass(frozen=True, slots=True)
class _PreparedImage:
    """A PNG decoded and compressed once, ready to become a PDF image XObject in any document."""

    name: str
    width: int
    height: int
    color_space: str
    data: bytes  # zlib-compressed samples
    alpha: bytes | None  # zlib-compressed 8-bit alpha (the soft mask), None if opaque


_SEALS: OrderedDict[bytes, _PreparedImage] = OrderedDict()
_SEALS_LOCK = threading.Lock()
_SEALS_MAX = 64


def _prepared_seal(png: bytes) -> _PreparedImage:
    """The seal PNG decoded once per process and kept by its SHA-256 (the last ``_SEALS_MAX`` seen)."""
    digest = hashlib.sha256(png).digest()
    with _SEALS_LOCK:
        prepared = _SEALS.get(digest)
        if prepared is not None:
            _SEALS.move_to_end(digest)
            return prepared
    prepared = _decode_seal(png, digest)
    with _SEALS_LOCK:
        _SEALS[digest] = prepared
        while len(_SEALS) > _SEALS_MAX:
            _SEALS.popitem(last=False)
    return prepared


def _decode_seal(png: bytes, digest: bytes) -> _PreparedImage:
    image = open_seal_png(png)
    transparent = "A" in image.getbands() or "transparency" in image.info
    image = image.convert("RGBA" if transparent else "RGB")
    alpha = None
    if transparent:
        alpha = zlib.compress(image.getchannel("A").tobytes())
        image = image.convert("RGB")
    return _PreparedImage(name="seal" + digest.hex()[:16], width=image.width, height=image.height,
                          color_space="DeviceRGB", data=zlib.compress(image.tobytes()), alpha=alpha)


def _image_object(prepared: _PreparedImage, *, name: str, data: bytes, color_space: str) -> pdfdoc.PDFImageXObject:
    image = pdfdoc.PDFImageXObject(name)
    image.width, image.height = prepared.width, prepared.height
    image.bitsPerComponent = 8
    image.colorSpace = color_space
    image.streamContent = data
    image._filters = ("FlateDecode",)
    image.mask = None
    return image


def _draw_seal_image(canvas: Canvas, prepared: _PreparedImage, cx: float, cy: float) -> None:
    """The cached seal as an image XObject (with its alpha as a soft mask), fitted to the seal's circle.

    This is what ``Canvas.drawImage`` does, minus decoding and compressing the pixels every time."""
    scale = 2 * _SEAL_RADIUS / max(prepared.width, prepared.height)
    width, height = prepared.width * scale, prepared.height * scale
    doc = canvas._doc
    registered = doc.getXObjectName(prepared.name)
    if registered not in doc.idToObject:
        image = _image_object(prepared, name=prepared.name, data=prepared.data, color_space=prepared.color_space)
        if prepared.alpha is not None:
            mask = _image_object(prepared, name=prepared.name + "a", data=prepared.alpha, color_space="DeviceGray")
            image.smask = doc.Reference(mask, doc.getXObjectName(mask.name))
        doc.Reference(image, registered)
        doc.addForm(prepared.name, image)
    canvas.saveState()
    canvas.translate(cx - width / 2, cy - height / 2)
    canvas.scale(width, height)
    canvas.addLiteral(f"/{registered} Do")
    canvas.restoreState()
    canvas._formsinuse.append(prepared.name)
    canvas._currentPageHasImages = 1


# --- QR code ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _QrRows:
    """A QR symbol: one string of "1" (dark) and "0" (light) per row of modules, top row first."""

    version: int
    size: int  # modules per side
    rows: tuple[str, ...]


def _draw_qr(canvas: Canvas, qr: _QrRows) -> None:
    """The symbol as a form XObject: one filled path of rectangles, runs of dark modules in a row
    (filled together, so no seams between them when rasterized). The white page around it is the
    quiet zone. Coordinates are in modules, y downwards (the placing ``cm`` scales and flips them).

    The rectangles of each 8-module chunk of a row come from a table made once per symbol size, so
    a row is a few C-level calls (a loop over its ~15 runs cost ~1 ms a page); a run that crosses
    a chunk boundary is two abutting rectangles."""
    table, offsets, pad = _qr_chunks(qr.size)
    chunks = len(offsets)
    pick = table.__getitem__
    ops = ["0 g\n"]
    for row, text in enumerate(qr.rows):
        row_bytes = (int(text, 2) << pad).to_bytes(chunks, "big")
        ops.append("".join(map(pick, map(add, offsets, row_bytes))).replace("Y", str(row)))
    ops.append("f")
    form = pdfdoc.PDFStream(content="".join(ops).encode("ascii"), filters=[_FLATE_FAST])
    form.dictionary.dict.update({"Type": "/XObject", "Subtype": "/Form", "BBox": f"[0 0 {qr.size} {qr.size}]"})
    doc = canvas._doc
    doc.addForm(_QR_FORM, form)
    module = _QR_SIZE / qr.size
    canvas.addLiteral(f"q {module:.4f} 0 0 {-module:.4f} {_QR_X:.2f} {_QR_Y + _QR_SIZE:.2f} cm "
                      f"/{doc.getXObjectName(_QR_FORM)} Do Q")
    canvas._formsinuse.append(_QR_FORM)


@functools.cache
def _qr_chunks(size: int) -> tuple[tuple[str, ...], tuple[int, ...], int]:
    """For a symbol ``size`` modules wide: the path operators of every 8-module pattern at every
    chunk position (index ``256 × chunk + pattern``, y left as "Y"), the index offset of each chunk,
    and the padding bits that make a row whole bytes."""
    chunks = -(-size // 8)
    table = []
    for chunk in range(chunks):
        for pattern in range(256):
            bits = format(pattern, "08b")
            table.append("".join(f"{8 * chunk + m.start()} Y {m.end() - m.start()} 1 re\n"
                                 for m in _DARK.finditer(bits)))
    return tuple(table), tuple(256 * chunk for chunk in range(chunks)), 8 * chunks - size


_DARK = re.compile("1+")
_QR_FORM = "eauthQR"


def _qr_rows(url: str) -> _QrRows:
    """qrcode's symbol for ``url`` at error correction M, as rows of dark runs."""
    chunks = list(qr_util.optimal_data_chunks(url.encode("utf-8"), minimum=20))  # as QRCode.add_data
    version = _best_fit(chunks)
    if version > MAX_QR_VERSION:
        raise QrCodeTooLarge(
            f"the QR URL ({len(url)} characters) needs QR version {version}: at most {MAX_QR_VERSION} "
            f"prints readably on the license", version=version)
    layout = _qr_layout(version)
    codewords = _codewords(version, chunks)
    bits = bin(int.from_bytes(codewords, "big") | (1 << (8 * len(codewords))))[3:] + "0"
    data = int("".join(layout.gather(bits)), 2)
    mask = layout.best_mask(data)
    matrix = format((data ^ layout.masks[mask]) | layout.functions[mask], f"0{layout.cells}b")
    n = layout.size
    return _QrRows(version=version, size=n, rows=tuple(matrix[i:i + n] for i in range(0, n * n, n)))




class _BitBuffer:
    """qrcode's ``BitBuffer`` interface over one integer (qrcode's appends a bit at a time)."""

    __slots__ = ("value", "length")

    def __init__(self) -> None:
        self.value, self.length = 0, 0

    def put(self, number: int, length: int) -> None:
        self.value = (self.value << length) | number
        self.length += length

    def __len__(self) -> int:
        return self.length


def _write_chunk(buffer: _BitBuffer, chunk: qr_util.QRData) -> None:
    if chunk.mode == qr_util.MODE_8BIT_BYTE:
        buffer.put(int.from_bytes(chunk.data, "big"), 8 * len(chunk.data))
    else:
        chunk.write(buffer)


def _best_fit(chunks: list[qr_util.QRData]) -> int:
    """``QRCode.best_fit`` at error correction M: the smallest version the data fits in."""
    start = 1
    while True:
        sizes = qr_util.mode_sizes_for_version(start)
        buffer = _BitBuffer()
        for chunk in chunks:
            buffer.put(chunk.mode, 4)
            buffer.put(len(chunk), sizes[chunk.mode])
            _write_chunk(buffer, chunk)
        version = bisect_left(qr_util.BIT_LIMIT_TABLE[ERROR_CORRECT_M], len(buffer), start)
        if version == 41:
            raise QrCodeTooLarge("the QR URL does not fit in any QR version", version=41)
        if qr_util.mode_sizes_for_version(version) is sizes:
            return version
        start = version


def _codewords(version: int, chunks: list[qr_util.QRData]) -> bytes:
    """``qrcode.util.create_data``: data bits, terminator, padding, Reed-Solomon, interleaving."""
    buffer = _BitBuffer()
    for chunk in chunks:
        buffer.put(chunk.mode, 4)
        buffer.put(len(chunk), qr_util.length_in_bits(chunk.mode, version))
        _write_chunk(buffer, chunk)
    blocks = qr_base.rs_blocks(version, ERROR_CORRECT_M)
    limit = sum(block.data_count for block in blocks) * 8
    buffer.put(0, min(limit - len(buffer), 4))
    if len(buffer) % 8:
        buffer.put(0, 8 - len(buffer) % 8)
    data = bytearray(buffer.value.to_bytes(len(buffer) // 8, "big"))
    for index in range((limit - len(buffer)) // 8):
        data.append(qr_util.PAD0 if index % 2 == 0 else qr_util.PAD1)
    ecc, offset = [], 0
    for block in blocks:
        ecc.append(_reed_solomon(data[offset:offset + block.data_count], block.total_count - block.data_count))
        offset += block.data_count
    return bytes(_qr_layout(version).interleave(bytes(data) + b"".join(ecc)))


@functools.cache
def _rs_table(ecc_count: int) -> tuple[int, ...]:
    """For each byte f: the generator polynomial (without its leading 1) times f, as one integer."""
    if ecc_count in qr_lut.rsPoly_LUT:
        generator = list(qr_lut.rsPoly_LUT[ecc_count])
    else:  # pragma: no cover - qrcode's table has every count QR uses
        poly = qr_base.Polynomial([1], 0)
        for i in range(ecc_count):
            poly = poly * qr_base.Polynomial([1, qr_base.gexp(i)], 0)
        generator = [poly[i] for i in range(len(poly))]
    log, exp = qr_base.LOG_TABLE, qr_base.EXP_TABLE
    table = [0]
    for factor in range(1, 256):
        row = bytes(0 if g == 0 else exp[(log[g] + log[factor]) % 255] for g in generator[1:])
        table.append(int.from_bytes(row, "big"))
    return tuple(table)


def _reed_solomon(data: bytes, ecc_count: int) -> bytes:
    """The ``ecc_count`` error correction code words of ``data`` (polynomial remainder, as an LFSR)."""
    table = _rs_table(ecc_count)
    shift, mask, remainder = 8 * (ecc_count - 1), (1 << (8 * ecc_count)) - 1, 0
    for byte in data:
        remainder = ((remainder << 8) & mask) ^ table[byte ^ (remainder >> shift)]
    return remainder.to_bytes(ecc_count, "big")


@dataclass(frozen=True, slots=True)
class _QrLayout:
    """One version's fixed parts, as integers of ``size``² bits (row-major, first module highest)."""

    version: int
    size: int
    cells: int
    gather: itemgetter  # data bit string (+ a final "0") → module characters, row-major
    masks: tuple[int, ...]  # per mask pattern: the data modules it inverts
    functions: tuple[int, ...]  # per mask pattern: dark function modules, with its format information
    test_functions: int  # dark function modules with format/version information light (qrcode's test pass)
    interleave: itemgetter  # data blocks then ECC blocks, concatenated → the interleaved code words
    all_modules: int
    right_neighbour: int  # modules that have one to the right
    below_neighbour: int  # modules that have one below
    row_windows: int  # modules that start 11 modules within their row
    column_windows: int  # modules that start 11 modules within their column

    def best_mask(self, data: int) -> int:
        """qrcode's choice (``QRCode.best_mask_pattern``): the first pattern with the fewest penalty
        points (ISO/IEC 18004 §7.8.3, as ``qrcode.util.lost_point`` counts them), scored with format
        and version information light."""
        best, best_points = 0, None
        for pattern, mask in enumerate(self.masks):
            points = self._penalty((data ^ mask) | self.test_functions)
            if best_points is None or points < best_points:
                best, best_points = pattern, points
        return best

    def _penalty(self, x: int) -> int:
        """``qrcode.util.lost_point`` with each rule evaluated on every module at once: bit (r, c) of
        a shifted copy holds module (r, c + k) (``<< k``) or (r + k, c) (``<< k·n``)."""
        n = self.size
        light = x ^ self.all_modules
        right = ~(x ^ (x << 1)) & self.right_neighbour  # same colour as the module to the right
        below = ~(x ^ (x << n)) & self.below_neighbour  # same colour as the module below
        # Runs of five or more of one colour, in rows and in columns: 3 + (length - 5) each, i.e. one
        # point per window of five plus two per run (a window that does not continue a run).
        points = 0
        for same, step in ((right, 1), (below, n)):
            windows = same & (same << step) & (same << 2 * step) & (same << 3 * step)
            points += windows.bit_count() + 2 * (windows & ~(same >> step)).bit_count()
        points += 3 * (right & (right << n) & below).bit_count()  # 2 × 2 blocks of one colour
        # 1:1:3:1:1 finder-like patterns with four light modules on one side: 40 each.
        for step, valid in ((1, self.row_windows), (n, self.column_windows)):
            d = [x << (k * step) for k in range(11)]
            w = [light << (k * step) for k in range(11)]
            common = valid & w[1] & d[4] & w[5] & d[6] & w[9]
            points += 40 * ((common & d[0] & d[2] & d[3] & w[7] & w[8] & w[10]).bit_count()
                            + (common & w[0] & w[2] & w[3] & d[7] & d[8] & d[10]).bit_count())
        percent = float(x.bit_count()) / self.cells
        return points + int(abs(percent * 100 - 50) / 5) * 10


@functools.lru_cache(maxsize=None)
def _qr_layout(version: int) -> _QrLayout:
    """Function patterns from qrcode's own setup code, and qrcode's data placement (``map_data``)."""
    n = version * 4 + 17
    code = qrcode.QRCode(version=version, error_correction=ERROR_CORRECT_M, border=0)
    code.modules_count = n
    code.modules = [[None] * n for _ in range(n)]
    code.setup_position_probe_pattern(0, 0)
    code.setup_position_probe_pattern(n - 7, 0)
    code.setup_position_probe_pattern(0, n - 7)
    code.setup_position_adjust_pattern()
    code.setup_timing_pattern()
    code.setup_type_info(True, 0)
    if version >= 7:
        code.setup_type_number(True)
    free = [[cell is None for cell in row] for row in code.modules]

    def bits(cells) -> int:
        return int("".join("1" if cell else "0" for row in cells for cell in row), 2)

    test_functions = bits(code.modules)
    order = []  # data modules in placement order, as map_data walks them
    row, step = n - 1, -1
    for col in range(n - 1, 0, -2):
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if free[row][c]:
                    order.append(row * n + c)
            row += step
            if row < 0 or row >= n:
                row -= step
                step = -step
                break
    codeword_bits = 8 * sum(block.total_count for block in qr_base.rs_blocks(version, ERROR_CORRECT_M))
    source = [codeword_bits] * (n * n)  # index of the bit string's final "0": function and remainder modules
    for index, cell in enumerate(order[:codeword_bits]):
        source[cell] = index
    masks, functions = [], []
    for pattern in range(8):
        inverts = qr_util.mask_func(pattern)
        masks.append(bits([[free[r][c] and inverts(r, c) for c in range(n)] for r in range(n)]))
        code.setup_type_info(False, pattern)
        if version >= 7:
            code.setup_type_number(False)
        functions.append(bits(code.modules))
    blocks = qr_base.rs_blocks(version, ERROR_CORRECT_M)
    data_starts, ecc_starts, data_at = [], [], 0
    ecc_at = sum(block.data_count for block in blocks)
    for block in blocks:
        data_starts.append((data_at, block.data_count))
        ecc_starts.append((ecc_at, block.total_count - block.data_count))
        data_at += block.data_count
        ecc_at += block.total_count - block.data_count
    interleaved = [start + i for group in (data_starts, ecc_starts) for i in range(max(c for _, c in group))
                   for start, count in group if i < count]  # as qrcode.util.create_bytes orders them
    return _QrLayout(version=version, size=n, cells=n * n, gather=itemgetter(*source), masks=tuple(masks),
                     functions=tuple(functions), test_functions=test_functions,
                     interleave=itemgetter(*interleaved), all_modules=(1 << (n * n)) - 1,
                     right_neighbour=bits([[c < n - 1 for c in range(n)] for _ in range(n)]),
                     below_neighbour=bits([[r < n - 1] * n for r in range(n)]),
                     row_windows=bits([[c <= n - 11 for c in range(n)] for _ in range(n)]),
                     column_windows=bits([[r <= n - 11] * n for r in range(n)]))
