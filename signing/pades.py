"""PAdES signatures (ETSI EN 319 142-1) with pyHanko over the platform's key store.

    seal = SealSpec(signer=keys.signer(record.key_label), certificate=record.certificate,
                    chain=(seal_ca,), trust_roots=(root,), name="某市人民政府",
                    timestamper=InProcessTimeStamper(tsa), revocation=RevocationData(ocsps=..., crls=...))
    signed = sign_pdf(pdf, seal=seal, level="B-LT", certify="no-changes",
                      appearance=Appearance(page=0, x=400, y=50, width=160, height=60, image=png))

Levels: ``B-B`` (CMS signature, signing certificate attribute), ``B-T`` (+ an RFC 3161 signature
timestamp from our TSA, in process), ``B-LT`` (+ the chain, OCSP responses and CRLs in the document
security store), ``B-LTA`` (+ a document timestamp over all of it). Revocation data is handed in by
the caller (``RevocationData``, made by our own CA in process): nothing here goes to the network.

The key never leaves the key store: ``KeyStoreSigner`` is a pyHanko ``Signer`` whose raw signature is
``keys.base.Signer.sign`` (file or PKCS#11). The CMS size is reserved up front (``bytes_reserved``), so
pyHanko does not sign twice to estimate it. This module knows PDFs and signatures, not licenses, and
imports nothing of the web layer. Use ``async_sign_pdf`` where an event loop runs (FastAPI),
``sign_pdf`` elsewhere (CLI, worker processes).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from typing import Literal

from asn1crypto import algos, cms, core
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import read_certification_data
from pyhanko.stamp.base import BaseStamp, BaseStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from eauth.errors import (
    DocumentLocked,
    EncryptedPdf,
    InvalidInput,
    InvalidSealImage,
    NotAPdf,
    PageOutOfRange,
    SealBoxOffPage,
)
from keys.base import Signer


class _NoFetchingNotice(logging.Filter):
    """pyHanko warns on every B-LT signature that validation data is embedded with fetching disabled:
    here that is the design (the data comes from our own CA), not a problem worth a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_NoFetchingNotice())

Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]
Certify = Literal["no-changes", "form-filling"]
LEVELS: tuple[str, ...] = ("B-B", "B-T", "B-LT", "B-LTA")
CERTIFY: dict[str, MDPPerm] = {"no-changes": MDPPerm.NO_CHANGES, "form-filling": MDPPerm.FILL_FORMS}

#: CMS bytes reserved in the file (written as hex, so twice this) before and after a signature
#: timestamp: certificates (~0.6 KB each), the signature, and the token (~2.5 KB with its certificates).
_RESERVE_PLAIN = 8 * 1024
_RESERVE_TIMESTAMPED = 16 * 1024


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


@dataclass(frozen=True, slots=True)
class RevocationData:
    """DER OCSP responses and CRLs covering the signer's chain and the TSA's, embedded at B-LT and up."""

    ocsps: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class SealSpec:
    """Who signs: an agency seal, its key in the key store, and what a long-term signature embeds."""

    #: The seal key (file or PKCS#11); only ``sign`` is called.
    signer: Signer
    #: The seal certificate (profile agency-seal).
    certificate: x509.Certificate
    #: Issuing CA certificate(s) up to, not including, the root.
    chain: tuple[x509.Certificate, ...]
    #: The root(s) the chain ends at, put in the DSS with the rest from B-LT.
    trust_roots: tuple[x509.Certificate, ...]
    #: The agency's name, shown in the visible seal.
    name: str
    #: Our TSA in process (``signing.timestamper.InProcessTimeStamper``); needed from B-T.
    timestamper: TimeStamper | None = None
    #: Revocation data for the seal chain and the TSA's; needed from B-LT.
    revocation: RevocationData = RevocationData()
    #: Further certificates the TSA's chain needs (the TSA certificate, its issuer) for B-LT.
    other_certificates: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class Appearance:
    """A visible seal: a box on a page (PDF points from the lower-left corner, page 0 first) with the
    seal image (PNG), the agency name and the signing time."""

    page: int
    x: float
    y: float
    width: float
    height: float
    image: bytes | None = None


# --- the key-store signer --------------------------------------------------------------------------


class KeyStoreSigner(signers.Signer):
    """A pyHanko signer whose signatures come from ``keys.base.Signer.sign``: the private key stays in
    the key store (never loaded here), and everything pyHanko needs is prepared once."""

    def __init__(self, signer: Signer, certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
        mechanism = "sha256_rsa" if signer.algorithm.is_rsa else "sha256_ecdsa"
        super().__init__(
            signing_cert=_asn1(certificate),
            cert_registry=SimpleCertificateStore.from_certs([_asn1(c) for c in chain]),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mechanism}),
            embed_roots=False,
        )
        self.key = signer
        # A dry run only needs the right size: DER ECDSA P-256 is at most 72 bytes, RSA the modulus.
        self._placeholder = bytes(signer.public_key.key_size // 8 if signer.algorithm.is_rsa else 72)
        # What is the same in every CMS SignedData this signer makes, DER-encoded once: the signer's
        # identifier and the certificates (leaf and issuing CAs, DER SET OF order).
        leaf = self.signing_cert
        self._sid = cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
            {"issuer": leaf.issuer, "serial_number": leaf.serial_number})}).dump()
        ders = {c.public_bytes(Encoding.DER) for c in (certificate, *chain)}
        self._certificates = _tlv(0xA0, b"".join(sorted(ders)))

    def _package_signature(self, *, digest_algorithm: str, cms_version, signed_attrs: cms.CMSAttributes,
                           signature: bytes, unsigned_attrs: cms.CMSAttributes, encap_content_info) -> cms.ContentInfo:
        """pyHanko's SignedData, put together from DER pieces. pyHanko builds it with asn1crypto, which
        re-tags (copies, re-parsing and re-encoding every nested field of) the signature timestamp
        token and the certificates: ~70% of the time of a B-T or B-LT signature under cProfile, and at
        times over a second for one dump."""
        if (encap_content_info not in (None, {"content_type": "data"}) or self.attribute_certs
                or digest_algorithm == "shake256"):
            return super()._package_signature(
                digest_algorithm=digest_algorithm, cms_version=cms_version, signed_attrs=signed_attrs,
                signature=signature, unsigned_attrs=unsigned_attrs, encap_content_info=encap_content_info)
        digest = algos.DigestAlgorithm({"algorithm": digest_algorithm}).dump()
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).dump()
        unsigned = b""
        if unsigned_attrs is not None and len(unsigned_attrs) > 0:
            # [1] IMPLICIT SET OF Attribute, each value dumped as it came (the signature timestamp token
            # as our TSA encoded it): dumping the asn1crypto structure around it re-encodes all of it.
            attributes = sorted(
                _tlv(0x30, attribute["type"].dump() + _tlv(0x31, b"".join(sorted(v.dump() for v in attribute["values"]))))
                for attribute in unsigned_attrs
            )
            unsigned = _tlv(0xA1, b"".join(attributes))
        signer_info = _tlv(0x30, b"".join((
            cms.CMSVersion("v1").dump(), self._sid, digest,
            b"\xa0" + signed_attrs.dump()[1:],  # [0] IMPLICIT: the very bytes that were signed, retagged
            mechanism, _tlv(0x04, signature), unsigned,
        )))
        signed_data = _tlv(0x30, b"".join((
            cms.CMSVersion(cms_version).dump(), _tlv(0x31, digest), _ENCAP_DATA, self._certificates,
            _tlv(0x31, signer_info),
        )))
        return cms.ContentInfo.load(_tlv(0x30, _ID_SIGNED_DATA + _tlv(0xA0, signed_data)))

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm.lower() != "sha256":
            raise InvalidInput(f"the key store signs SHA-256 only, not {digest_algorithm}")
        if dry_run:
            return self._placeholder
        return self.key.sign(data)


_ID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()


def _tlv(tag: int, content: bytes) -> bytes:
    """DER: one-byte ``tag``, definite length, ``content``."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + content


_ENCAP_DATA = _tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.7.1").dump())  # id-data, no content (detached)


# --- input checks ----------------------------------------------------------------------------------


def _reader(pdf: bytes) -> PdfFileReader:
    if not pdf.lstrip()[:5] == b"%PDF-" and b"%PDF-" not in pdf[:1024]:
        raise NotAPdf("the document does not start with a %PDF- header")
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        encrypted = reader.encrypted
        if not encrypted:
            reader.root["/Pages"]  # the trailer and catalog parse
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise NotAPdf(f"the document cannot be read as a PDF: {exc}") from None
    if encrypted:
        raise EncryptedPdf("the PDF is encrypted: decrypt it before it is sealed")
    return reader


def _check(reader: PdfFileReader, appearance: Appearance | None) -> None:
    try:
        certification = read_certification_data(reader)
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise NotAPdf(f"the PDF's certification data cannot be read: {exc}") from None
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        raise DocumentLocked("the PDF is already certified with no changes allowed (DocMDP P=1)")
    if appearance is None:
        return
    pages = int(reader.root["/Pages"]["/Count"])
    if not 0 <= appearance.page < pages:
        raise PageOutOfRange(f"page {appearance.page} does not exist: the PDF has {pages} page(s), numbered from 0")
    if appearance.width <= 0 or appearance.height <= 0:
        raise SealBoxOffPage("the seal box needs a positive width and height")
    page = reader.find_page_for_modification(appearance.page)[0].get_object()
    box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    left, right, bottom, top = min(box[0], box[2]), max(box[0], box[2]), min(box[1], box[3]), max(box[1], box[3])
    if not (left <= appearance.x and appearance.x + appearance.width <= right
            and bottom <= appearance.y and appearance.y + appearance.height <= top):
        raise SealBoxOffPage(
            f"the seal box ({appearance.x:g}, {appearance.y:g}, {appearance.width:g} × {appearance.height:g}) is not "
            f"within page {appearance.page} ({float(left):g}, {float(bottom):g}) – ({float(right):g}, {float(top):g})"
        )


def _inherited(page: generic.DictionaryObject, key: str):
    while page is not None:
        if key in page:
            return [float(v) for v in page[key]]
        parent = page.get("/Parent")
        page = parent.get_object() if parent is not None else None
    return None


# --- the visible seal ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PngXObject:
    """An image XObject made from a PNG without decoding it where possible."""

    width: int
    height: int
    stream: generic.StreamObject
    smask: generic.StreamObject | None


def png_xobject(png: bytes) -> _PngXObject:
    """8-bit non-interlaced PNGs: grey or RGB go in as they are (FlateDecode with the PNG predictors);
    palette images as Indexed; an alpha channel becomes a soft mask."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise InvalidSealImage("the seal image is not a PNG")
    pos, idat, header, palette = 8, [], None, None
    try:
        while pos < len(png):
            length, kind = struct.unpack(">I4s", png[pos:pos + 8])
            data = png[pos + 8:pos + 8 + length]
            pos += 12 + length
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", data)
            elif kind == b"PLTE":
                palette = data
            elif kind == b"IDAT":
                idat.append(data)
            elif kind == b"IEND":
                break
    except struct.error:
        raise InvalidSealImage("the seal image is a truncated PNG") from None
    if header is None or not idat:
        raise InvalidSealImage("the seal image PNG has no header or no image data")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or interlace or colour not in (0, 2, 3, 4, 6) or not (0 < width <= 4096 and 0 < height <= 4096):
        raise InvalidSealImage("the seal image must be an 8-bit, non-interlaced PNG of at most 4096 × 4096 pixels")
    data = b"".join(idat)
    spaces = {0: pdf_name("/DeviceGray"), 2: pdf_name("/DeviceRGB"), 4: pdf_name("/DeviceGray"), 6: pdf_name("/DeviceRGB")}
    if colour in (0, 2, 3):
        colours = {0: 1, 2: 3, 3: 1}[colour]
        if colour == 3:
            if palette is None:
                raise InvalidSealImage("the seal image PNG has no palette")
            space = generic.ArrayObject([pdf_name("/Indexed"), pdf_name("/DeviceRGB"),
                                         generic.NumberObject(len(palette) // 3 - 1), generic.ByteStringObject(palette)])
        else:
            space = spaces[colour]
        stream = _image_stream(width, height, space, data, predictor_colours=colours)
        return _PngXObject(width, height, stream, None)
    colours = 1 if colour == 4 else 3
    try:
        raw = _unfilter(zlib.decompress(data), width, height, colours + 1)
    except zlib.error:
        raise InvalidSealImage("the seal image PNG data is corrupt") from None
    step = colours + 1
    alpha = bytes(raw[colours::step])
    pixels = memoryview(raw)
    colour_bytes = b"".join(bytes(pixels[i:i + colours]) for i in range(0, len(raw), step))
    stream = _image_stream(width, height, spaces[colour], zlib.compress(colour_bytes))
    smask = _image_stream(width, height, pdf_name("/DeviceGray"), zlib.compress(alpha))
    return _PngXObject(width, height, stream, smask)


def _image_stream(width, height, space, data: bytes, *, predictor_colours: int | None = None) -> generic.StreamObject:
    entries = {
        pdf_name("/Type"): pdf_name("/XObject"),
        pdf_name("/Subtype"): pdf_name("/Image"),
        pdf_name("/Width"): generic.NumberObject(width),
        pdf_name("/Height"): generic.NumberObject(height),
        pdf_name("/ColorSpace"): space,
        pdf_name("/BitsPerComponent"): generic.NumberObject(8),
        pdf_name("/Filter"): pdf_name("/FlateDecode"),
    }
    if predictor_colours is not None:
        entries[pdf_name("/DecodeParms")] = generic.DictionaryObject({
            pdf_name("/Predictor"): generic.NumberObject(15),
            pdf_name("/Colors"): generic.NumberObject(predictor_colours),
            pdf_name("/BitsPerComponent"): generic.NumberObject(8),
            pdf_name("/Columns"): generic.NumberObject(width),
        })
    return generic.StreamObject(generic.DictionaryObject(entries), encoded_data=data)


def _unfilter(data: bytes, width: int, height: int, bpp: int) -> bytearray:
    """Undo the PNG row filters (RFC 2083 §6) of 8-bit samples, ``bpp`` bytes a pixel."""
    stride = width * bpp
    if len(data) < height * (stride + 1):
        raise InvalidSealImage("the seal image PNG data is truncated")
    out = bytearray(height * stride)
    previous = bytearray(stride)
    for row in range(height):
        kind = data[row * (stride + 1)]
        line = bytearray(data[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 0xFF
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = previous[i]
                c = previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        elif kind != 0:
            raise InvalidSealImage(f"the seal image PNG uses unknown row filter {kind}")
        out[row * stride:(row + 1) * stride] = line
        previous = line
    return out


# Adobe's predefined Simplified Chinese CID font (no font file: every PDF viewer substitutes one of its
# own), addressed in UCS-2 so that any BMP character of an agency's name can be written.
_CJK_FONT_NAME = "/SealFont"


def _cjk_font() -> generic.DictionaryObject:
    descriptor = generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/FontDescriptor"),
        pdf_name("/FontName"): pdf_name("/STSong-Light"),
        pdf_name("/Flags"): generic.NumberObject(6),
        pdf_name("/FontBBox"): generic.ArrayObject(map(generic.NumberObject, (-25, -254, 1000, 880))),
        pdf_name("/ItalicAngle"): generic.NumberObject(0),
        pdf_name("/Ascent"): generic.NumberObject(880),
        pdf_name("/Descent"): generic.NumberObject(-120),
        pdf_name("/CapHeight"): generic.NumberObject(880),
        pdf_name("/StemV"): generic.NumberObject(93),
    })
    descendant = generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"),
        pdf_name("/Subtype"): pdf_name("/CIDFontType0"),
        pdf_name("/BaseFont"): pdf_name("/STSong-Light"),
        pdf_name("/CIDSystemInfo"): generic.DictionaryObject({
            pdf_name("/Registry"): generic.TextStringObject("Adobe"),
            pdf_name("/Ordering"): generic.TextStringObject("GB1"),
            pdf_name("/Supplement"): generic.NumberObject(4),
        }),
        pdf_name("/FontDescriptor"): descriptor,
        pdf_name("/DW"): generic.NumberObject(1000),
        # CIDs 1-95 of Adobe-GB1 are the half-width ASCII glyphs (U+0020-U+007E).
        pdf_name("/W"): generic.ArrayObject(map(generic.NumberObject, (1, 95, 500))),
    })
    return generic.DictionaryObject({
        pdf_name("/Type"): pdf_name("/Font"),
        pdf_name("/Subtype"): pdf_name("/Type0"),
        pdf_name("/BaseFont"): pdf_name("/STSong-Light-UniGB-UCS2-H"),
        pdf_name("/Encoding"): pdf_name("/UniGB-UCS2-H"),
        pdf_name("/DescendantFonts"): generic.ArrayObject([descendant]),
    })


def _ucs2(text: str) -> bytes:
    """A hex string of ``text`` in UCS-2 (characters beyond the BMP become U+FFFD)."""
    return b"<" + "".join(c if ord(c) <= 0xFFFF else "\ufffd" for c in text).encode("utf-16-be").hex().encode() + b">"


@dataclass(frozen=True)
class SealStampStyle(BaseStampStyle):
    """The seal image on the left (aspect kept), the agency name and signing time beside it."""

    name: str = ""
    image: _PngXObject | None = None
    signing_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    border_width: int = 0

    def create_stamp(self, writer, box: BoxConstraints, text_params: dict) -> BaseStamp:
        return _SealStamp(writer=writer, style=self, box=box)


class _SealStamp(BaseStamp):
    def _render_inner_content(self):
        style: SealStampStyle = self.style
        width, height = self.box.width, self.box.height
        commands, text_left = [], 2.0
        if style.image is not None:
            image = style.image
            stream = image.stream
            if image.smask is not None:
                stream = generic.StreamObject(generic.DictionaryObject(dict(image.stream)),
                                              encoded_data=image.stream.encoded_data)
                stream[pdf_name("/SMask")] = self.writer.add_object(image.smask)
            scale = min(height / image.height, (width * 0.45) / image.width)
            w, h = image.width * scale, image.height * scale
            self.set_resource(category=ResourceType.XOBJECT, name=pdf_name("/SealImage"),
                              value=self.writer.add_object(stream))
            commands.append(b"q %g 0 0 %g 0 %g cm /SealImage Do Q" % (w, h, (height - h) / 2))
            text_left = w + 4
        self.set_resource(category=ResourceType.FONT, name=pdf_name(_CJK_FONT_NAME),
                          value=self.writer.add_object(_cjk_font()))
        lines = [style.name, style.signing_time.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")]
        available = max(width - text_left - 2, 1)
        size = max(min(height / 4, available / max(1, max(len(line) for line in lines))), 2)
        y = height / 2 + size * 0.2
        for line in lines:
            commands.append(b"BT %s %g Tf %g %g Td %s Tj ET" % (_CJK_FONT_NAME.encode(), size, text_left, y, _ucs2(line)))
            y -= size * 1.4
        return commands


# --- signing ---------------------------------------------------------------------------------------


def _supply_dss(writer: IncrementalPdfFileWriter, seal: SealSpec) -> None:
    """The document security store, in the revision that the signature is about to be added to: the
    seal's and the TSA's chains and roots, the OCSP responses and CRLs our CA made for them. Written
    from what the caller gathered rather than by pyHanko's ``embed_validation_info``, which validates
    the chain (with revocation) once more before signing only to find out what to embed: ~40% of a
    B-LT signature, for data we already have."""
    certificates = {c.public_bytes(Encoding.DER): c
                    for c in (seal.certificate, *seal.chain, *seal.other_certificates, *seal.trust_roots)}
    DocumentSecurityStore.supply_dss_in_writer(
        writer, None,
        certs=[asn1_x509.Certificate.load(der) for der in certificates],
        ocsps=[asn1_ocsp.OCSPResponse.load(der) for der in seal.revocation.ocsps],
        crls=[asn1_crl.CertificateList.load(der) for der in seal.revocation.crls],
    )


async def async_sign_pdf(
    pdf: bytes,
    *,
    seal: SealSpec,
    level: Level = "B-B",
    certify: Certify | None = None,
    appearance: Appearance | None = None,
) -> bytes:
    """``pdf`` with one more signature (incremental update) by ``seal`` at PAdES ``level``: a
    certification signature with DocMDP ``certify``, else an approval signature. Domain errors for a
    document that can't be signed; nothing is returned half-written."""
    if level not in LEVELS:
        raise InvalidInput(f"unknown PAdES level {level!r}; use one of {', '.join(LEVELS)}")
    if certify is not None and certify not in CERTIFY:
        raise InvalidInput(f"unknown certification {certify!r}; use one of {', '.join(CERTIFY)}")
    if level != "B-B" and seal.timestamper is None:
        raise InvalidInput(f"PAdES {level} needs a timestamper")
    image = png_xobject(appearance.image) if appearance is not None and appearance.image is not None else None
    reader = _reader(pdf)
    _check(reader, appearance)
    field_name = f"Seal-{uuid.uuid4().hex[:12]}"
    long_term = level in ("B-LT", "B-LTA")
    if long_term and not (seal.revocation.ocsps or seal.revocation.crls):
        raise InvalidInput(f"PAdES {level} needs revocation data (OCSP responses or CRLs) to embed")
    metadata = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        name=seal.name,
        certify=certify is not None,
        docmdp_permissions=CERTIFY[certify] if certify is not None else MDPPerm.FILL_FORMS,
    )
    field_spec, style = None, None
    if appearance is not None:
        box = (appearance.x, appearance.y, appearance.x + appearance.width, appearance.y + appearance.height)
        field_spec = SigFieldSpec(sig_field_name=field_name, on_page=appearance.page, box=box)
        style = SealStampStyle(name=seal.name, image=image)
    pdf_signer = signers.PdfSigner(
        metadata,
        signer=KeyStoreSigner(seal.signer, seal.certificate, seal.chain),
        timestamper=seal.timestamper if level != "B-B" else None,
        stamp_style=style,
        new_field_spec=field_spec,
    )
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    if long_term:
        # The DSS goes into the signature's own revision, so that a B-LT signature covers the whole
        # file (validators without incremental-update analysis, pdfsig, accept it as it is).
        _supply_dss(writer, seal)
    output = BytesIO()
    reserved = _RESERVE_PLAIN if level == "B-B" else _RESERVE_TIMESTAMPED
    await pdf_signer.async_sign_pdf(writer, output=output, bytes_reserved=reserved)
    if level != "B-LTA":
        return output.getvalue()
    # B-LTA: a document timestamp over everything, in a revision of its own. The data validating its
    # TSA is already in the DSS (same TSA as the signature timestamp).
    archived = BytesIO()
    stamper = signers.PdfTimeStamper(seal.timestamper, field_name=f"DocTs-{uuid.uuid4().hex[:12]}")
    await stamper.async_timestamp_pdf(IncrementalPdfFileWriter(output, strict=False), "sha256",
                                      output=archived, bytes_reserved=_RESERVE_TIMESTAMPED // 2)
    return archived.getvalue()


def sign_pdf(
    pdf: bytes,
    *,
    seal: SealSpec,
    level: Level = "B-B",
    certify: Certify | None = None,
    appearance: Appearance | None = None,
) -> bytes:
    """``async_sign_pdf`` for code without a running event loop (CLI, worker processes, threads)."""
    return asyncio.run(async_sign_pdf(pdf, seal=seal, level=level, certify=certify, appearance=appearance))
