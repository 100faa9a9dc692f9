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
import functools
import hashlib
import logging
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Literal

from asn1crypto import algos, cms, core
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fontTools import subset
from fontTools.ttLib import TTFont
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import (
    AxisAlignment,
    InnerScaling,
    Margins,
    SimpleBoxLayoutRule,
)
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import signers
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import read_certification_data
from pyhanko.stamp.base import BaseStampStyle
from pyhanko.stamp.text import TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore

from eauth.der import tlv
from eauth.errors import (
    DocumentLocked,
    EncryptedPdf,
    InvalidInput,
    InvalidSealImage,
    NotAPdf,
    PageOutOfRange,
    SealBoxOffPage,
    SealFontMissing,
)
from eauth.pdf_limits import DEFAULT_PDF_LIMITS, PdfLimits, check_pdf_limits
from keys.base import Signer
from signing.timestamper import InProcessTimeStamper


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
        # identifier, the certificates (leaf and issuing CAs, DER SET OF order), the signature
        # algorithm and the signing-certificate-v2 attribute.
        leaf = self.signing_cert
        self._sid = cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
            {"issuer": leaf.issuer, "serial_number": leaf.serial_number})}).dump()
        ders = {c.public_bytes(Encoding.DER) for c in (certificate, *chain)}
        self._certificates = tlv(0xA0, b"".join(sorted(ders)))
        self._mechanism = self.get_signature_mechanism_for_digest("sha256").dump()
        self._signing_certificate = cms.CMSAttribute(
            {"type": "signing_certificate_v2", "values": [as_signing_certificate_v2(leaf)]}).dump()

    async def async_sign(self, data_digest: bytes, digest_algorithm: str, dry_run: bool = False,
                         use_pades: bool = False, timestamper: TimeStamper | None = None,
                         signed_attr_settings=None, is_pdf_sig: bool = True,
                         encap_content_info=None) -> cms.ContentInfo:
        """The detached CMS SignedData of a PAdES signature, put together from DER pieces.

        pyHanko builds it as an asn1crypto tree: signed attributes from providers, the timestamp token
        through a TimeStampReq/Resp, and a SignedData that asn1crypto re-tags, re-parses and re-encodes
        (the token's certificates included) on every dump: ~75% of a B-LT signature under cProfile. The
        same structure here: signed attributes content-type, message-digest and signing-certificate-v2
        (no signing-time: PAdES takes it from the signature dictionary), the signature, and for B-T up
        the signature timestamp token as our TSA encoded it. Anything else pyHanko may ask for (CAdES
        attributes, Adobe revocation attribute, encapsulated content) takes pyHanko's own path.
        """
        extras = signed_attr_settings is not None and (
            signed_attr_settings.cades_signed_attrs is not None
            or getattr(signed_attr_settings, "adobe_revinfo_attr", None) is not None)
        if (not use_pades or not is_pdf_sig or extras or encap_content_info is not None
                or digest_algorithm.lower() != "sha256" or self.unsigned_attr_prov_spec is not None):
            return await super().async_sign(
                data_digest, digest_algorithm, dry_run=dry_run, use_pades=use_pades, timestamper=timestamper,
                signed_attr_settings=signed_attr_settings, is_pdf_sig=is_pdf_sig,
                encap_content_info=encap_content_info)
        message_digest = tlv(0x30, _ID_MESSAGE_DIGEST + tlv(0x31, tlv(0x04, data_digest)))
        # DER orders a SET OF by the encodings of its elements; verifiers re-encode before checking.
        signed = b"".join(sorted((_ATTR_CONTENT_TYPE_DATA, message_digest, self._signing_certificate)))
        signature = await self.async_sign_raw(tlv(0x31, signed), "sha256", dry_run)
        unsigned = b""
        if timestamper is not None:
            token = await _signature_timestamp(timestamper, hashlib.sha256(signature).digest(), dry_run)
            unsigned = tlv(0xA1, tlv(0x30, _ID_TIMESTAMP_TOKEN + tlv(0x31, token)))
        signer_info = tlv(0x30, b"".join((
            _CMS_V1, self._sid, _SHA256, tlv(0xA0, signed), self._mechanism, tlv(0x04, signature), unsigned)))
        signed_data = tlv(0x30, b"".join((
            _CMS_V1, tlv(0x31, _SHA256), _ENCAP_DATA, self._certificates, tlv(0x31, signer_info))))
        return cms.ContentInfo.load(tlv(0x30, _ID_SIGNED_DATA + tlv(0xA0, signed_data)))

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm.lower() != "sha256":
            raise InvalidInput(f"the key store signs SHA-256 only, not {digest_algorithm}")
        if dry_run:
            return self._placeholder
        return self.key.sign(data)


@functools.lru_cache(maxsize=64)
def _pyhanko_signer(signer: Signer, certificate: x509.Certificate,
                    chain: tuple[x509.Certificate, ...]) -> KeyStoreSigner:
    """The KeyStoreSigner of a seal, prepared once per process (~4 ms of asn1crypto encoding): key
    stores hand out one Signer object per key, and certificates compare by value."""
    return KeyStoreSigner(signer, certificate, chain)


async def _signature_timestamp(timestamper: TimeStamper, digest: bytes, dry_run: bool) -> bytes:
    """The DER timestamp token over a signature value: straight from our TSA when it is in process."""
    if dry_run:
        return (await timestamper.async_dummy_response("sha256")).dump()
    if isinstance(timestamper, InProcessTimeStamper):
        return timestamper.token(digest, "sha256")
    return (await timestamper.async_timestamp(digest, "sha256")).dump()


_ID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
_ID_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.1").dump()
_ID_MESSAGE_DIGEST = core.ObjectIdentifier("1.2.840.113549.1.9.4").dump()
_ID_TIMESTAMP_TOKEN = core.ObjectIdentifier("1.2.840.113549.1.9.16.2.14").dump()  # id-aa-signatureTimeStampToken
_ATTR_CONTENT_TYPE_DATA = tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.9.3").dump() + tlv(0x31, _ID_DATA))
_ENCAP_DATA = tlv(0x30, _ID_DATA)  # id-data, no content (detached)
_CMS_V1 = cms.CMSVersion("v1").dump()
_SHA256 = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()


# --- input checks ----------------------------------------------------------------------------------


#: What pyHanko raises on a corrupt document (found by tests/fuzz/test_pdf_fuzz.py).
_BROKEN = (PdfError, ValueError, LookupError, TypeError, AttributeError, AssertionError, ArithmeticError,
           RecursionError, NotImplementedError, zlib.error)


def _reader(pdf: bytes) -> PdfFileReader:
    if not pdf.lstrip()[:5] == b"%PDF-" and b"%PDF-" not in pdf[:1024]:
        raise NotAPdf("the document does not start with a %PDF- header")
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        encrypted = reader.encrypted
        if not encrypted:
            reader.root["/Pages"]  # the trailer and catalog parse
    except _BROKEN as exc:
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


_MAX_PAGE_TREE_DEPTH = 256


def _inherited(page: generic.DictionaryObject, key: str):
    for _ in range(_MAX_PAGE_TREE_DEPTH):  # a /Parent cycle in a hostile file would otherwise loop forever
        if page is None:
            return None
        if key in page:
            return [float(v) for v in page[key]]
        parent = page.get("/Parent")
        page = parent.get_object() if parent is not None else None
    return None


# --- the visible seal ------------------------------------------------------------------------------

#: WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``): embedded as a subset, so that the agency's name
#: shows the same in every viewer.
SEAL_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
#: Largest seal image accepted, checked from the PNG header before any pixel is decoded.
MAX_SEAL_PIXELS = (4096, 4096)


#: What the signing time shows besides the agency's name (printable ASCII: digits, separators, zone).
_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))


@functools.lru_cache(maxsize=256)
def _font_program(characters: str, path: Path = SEAL_FONT) -> bytes:
    """The seal font cut down to ``characters`` (the agency's name plus ASCII), as one TrueType font.

    pyHanko's glyph accumulator subsets again per signature but keeps glyph ids, so it walks every
    glyph of the font it is given: ~0.9 s a signature over the 46,000 of WenQuanYi Micro Hei, a few
    ms over the ~100 here. Cut once per agency name (~0.7 s) and kept. Also turns the ``.ttc``
    collection into the single font pyHanko (fontTools, HarfBuzz) reads.
    """
    try:
        font = TTFont(path, fontNumber=0)
    except FileNotFoundError:
        raise SealFontMissing(f"the seal font {path} is not installed (Debian package fonts-wqy-microhei)") from None
    options = subset.Options()
    options.notdef_outline = True
    options.drop_tables += ["FFTM"]  # FontForge's timestamps, which fontTools can't subset
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=characters + _ASCII)
    subsetter.subset(font)
    buffer = BytesIO()
    font.save(buffer)
    return buffer.getvalue()


class _GlyphsInThousandths(GlyphAccumulator):
    """pyHanko's glyph accumulator writes the font's glyph widths (/W) and kerning (TJ) in font units,
    where PDF wants thousandths of an em: right only for a font of 1000 units an em. WenQuanYi Micro
    Hei has 2048, so every glyph came out twice as wide as it is. Here HarfBuzz shapes in thousandths
    of an em and the widths are scaled to match (scaling the font itself, fontTools' ``scale_upem``,
    takes ~17 s for its 46,000 glyphs)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._font_units = self.units_per_em
        self.units_per_em = 1000
        self.hb_font.scale = (1000, 1000)

    def _get_cid_and_width(self, glyph_id: int) -> tuple[int, int]:
        if glyph_id not in self._glyphs:
            cid, width = super()._get_cid_and_width(glyph_id)
            self._glyphs[glyph_id] = cid, round(width * 1000 / self._font_units)
        return self._glyphs[glyph_id]


class _SealFont(GlyphAccumulatorFactory):
    """pyHanko's embedded, subset OpenType font engine over the seal font cut to ``characters``."""

    def __init__(self, characters: str) -> None:
        super().__init__(str(SEAL_FONT))
        self.characters = characters

    def create_font_engine(self, writer, obj_stream=None) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return _GlyphsInThousandths(writer=writer, font_handle=BytesIO(_font_program(self.characters)),
                                    font_size=self.font_size, obj_stream=obj_stream)


def open_seal_png(png: bytes) -> Image.Image:
    """A seal image decoded by Pillow: a PNG of at most ``MAX_SEAL_PIXELS`` (checked from the header,
    before any pixel is decoded); InvalidSealImage otherwise. For visible seals and licenses alike."""
    try:
        image = Image.open(BytesIO(png), formats=["PNG"])
        if image.width > MAX_SEAL_PIXELS[0] or image.height > MAX_SEAL_PIXELS[1]:
            raise InvalidSealImage(
                f"the seal image is {image.width} × {image.height} pixels: at most "
                f"{MAX_SEAL_PIXELS[0]} × {MAX_SEAL_PIXELS[1]} are accepted")
        image.load()
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidSealImage(f"the seal image is not a readable PNG: {exc}") from None
    return image


def seal_image(png: bytes) -> PdfImage:
    """The seal image for pyHanko's stamp (``open_seal_png``)."""
    image = open_seal_png(png)
    transparent = "A" in image.getbands() or "transparency" in image.info
    if image.mode not in ("RGB", "RGBA", "L", "LA") or (image.mode in ("RGB", "L") and transparent):
        image = image.convert("RGBA" if transparent else "RGB")
    return PdfImage(image)


def _stamp_style(appearance: Appearance, name: str) -> TextStampStyle:
    """The seal image on the left (aspect kept, within 45% of the box), the agency name and signing
    time beside it, shrunk to fit."""
    text_left = 2.0
    background, background_layout = None, BaseStampStyle().background_layout
    if appearance.image is not None:
        background = seal_image(appearance.image)
        image_width = appearance.width * 0.45
        background_layout = SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MID,
            margins=Margins(left=0, right=appearance.width - image_width, top=0, bottom=0),
            inner_content_scaling=InnerScaling.STRETCH_TO_FIT)
        text_left = image_width + 4
    _font_program(name)  # a missing font is a configuration error here, not one inside pyHanko
    return TextStampStyle(
        stamp_text="%(signer)s\n%(ts)s",
        text_box_style=TextBoxStyle(font=_SealFont(name)),
        inner_content_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MID,
            margins=Margins(left=text_left, right=2, top=2, bottom=2)),
        background=background,
        background_layout=background_layout,
        background_opacity=1.0,
        border_width=0,
    )


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
    limits: PdfLimits = DEFAULT_PDF_LIMITS,
) -> bytes:
    """``pdf`` with one more signature (incremental update) by ``seal`` at PAdES ``level``: a
    certification signature with DocMDP ``certify``, else an approval signature. Domain errors for a
    document that can't be signed (PdfTooComplex over ``limits``, checked first); nothing is returned
    half-written."""
    if level not in LEVELS:
        raise InvalidInput(f"unknown PAdES level {level!r}; use one of {', '.join(LEVELS)}")
    if certify is not None and certify not in CERTIFY:
        raise InvalidInput(f"unknown certification {certify!r}; use one of {', '.join(CERTIFY)}")
    if level != "B-B" and seal.timestamper is None:
        raise InvalidInput(f"PAdES {level} needs a timestamper")
    reader = _reader(pdf)
    try:
        check_pdf_limits(reader, limits)
        return await _sign(reader, seal=seal, level=level, certify=certify, appearance=appearance)
    except _BROKEN as exc:  # pyHanko reads lazily: a broken object surfaces wherever it is first touched
        raise NotAPdf(f"the PDF's structure is broken: {type(exc).__name__}: {exc}"[:500]) from None


async def _sign(reader: PdfFileReader, *, seal: SealSpec, level: Level, certify: Certify | None,
                appearance: Appearance | None) -> bytes:
    _check(reader, appearance)
    style = _stamp_style(appearance, seal.name) if appearance is not None else None
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
    field_spec = None
    if appearance is not None:
        box = (appearance.x, appearance.y, appearance.x + appearance.width, appearance.y + appearance.height)
        field_spec = SigFieldSpec(sig_field_name=field_name, on_page=appearance.page, box=box)
    pdf_signer = signers.PdfSigner(
        metadata,
        signer=_pyhanko_signer(seal.signer, seal.certificate, seal.chain),
        timestamper=seal.timestamper if level != "B-B" else None,
        stamp_style=style,
        new_field_spec=field_spec,
    )
    writer = IncrementalPdfFileWriter.from_reader(reader)
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
    limits: PdfLimits = DEFAULT_PDF_LIMITS,
) -> bytes:
    """``async_sign_pdf`` for code without a running event loop (CLI, worker processes, threads)."""
    return asyncio.run(async_sign_pdf(pdf, seal=seal, level=level, certify=certify, appearance=appearance,
                                      limits=limits))
