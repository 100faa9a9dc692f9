"""License rendering: the PDF's font is embedded as a subset with a Unicode map (poppler's pdffonts and
pdftotext read it back), the QR code printed on the page scans (pdftoppm at 150 dpi + zbarimg) to
exactly the URL and is qrcode's own symbol, characters the font lacks are refused naming the field,
the seal is vector or the agency's PNG, and the same document renders to the same bytes."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
import qrcode
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw
from qrcode.constants import ERROR_CORRECT_M

from eauth.errors import (
    InvalidSealImage,
    LicenseContentTooLong,
    QrCodeTooLarge,
    UnrenderableCharacter,
)
from licenses import render
from licenses.render import LICENSE_FONT, LicenseDocument, qr_version, render_license
from tests.conftest import require_seal_font, require_tool

SCOPE = ("许可项目：食品经营；第二类增值电信业务；互联网信息服务；建设工程施工（依法须经批准的项目，经相关部门批准后方可"
         "开展经营活动，具体经营项目以相关部门批准文件或许可证件为准）。一般项目：技术服务、技术开发、技术咨询、技术交流、"
         "技术转让、技术推广；软件开发；信息系统集成服务；信息技术咨询服务；数据处理和存储支持服务；计算机系统服务；网络技术"
         "服务；人工智能应用软件开发；物联网技术服务；会议及展览服务；广告设计、代理；广告制作；广告发布；企业管理咨询；市场"
         "营销策划；办公设备销售；计算机软硬件及辅助设备零售；电子产品销售；通讯设备销售；日用百货销售；文具用品零售；体育用品"
         "及器材零售；货物进出口；技术进出口（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）。")
ISSUER = "福州市市场监督管理局"
DPI = 150
SCALE = DPI / 72


def _url(length: int = 230, seed: bytes = b"license") -> str:
    """A verification URL of ``length`` characters carrying a JWS-shaped token (base64url, two dots)."""
    prefix = "https://verify.eauth.gov.cn/v/"
    body = base64.urlsafe_b64encode(hashlib.shake_256(seed).digest(600)).decode().rstrip("=")
    token = f"{body[:36]}.{body[36:150]}.{body[150:]}"
    return prefix + token[:length - len(prefix)]


def _document(**changes) -> LicenseDocument:
    values = dict(
        title_zh="营业执照", title_en="Business License",
        identifier="1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F",
        holder_name="福州闽江数字科技有限公司",
        fields=(("统一社会信用代码", "91350100M000100Y43"), ("名称", "福州闽江数字科技有限公司"),
                ("类型", "有限责任公司（自然人投资或控股）"), ("法定代表人", "张三"), ("注册资本", "壹仟万元整"),
                ("成立日期", "2019年3月8日"), ("营业期限", "2019年3月8日至长期"),
                ("住所", "福建省福州市鼓楼区五四路158号环球广场23层2301室"), ("经营范围", SCOPE)),
        issuer_name=ISSUER, issued_on=date(2024, 5, 6), valid_until=None, qr_url=_url(),
    )
    values.update(changes)
    return LicenseDocument(**values)


def _seal_png(colour: tuple[int, int, int] = (20, 60, 200), size: int = 240) -> bytes:
    """A round seal drawn with Pillow: a ring and a filled centre, transparent around them."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 6, size - 6, size - 6), outline=colour + (255,), width=14)
    draw.ellipse((size // 3, size // 3, 2 * size // 3, 2 * size // 3), fill=colour + (255,))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def pdf() -> bytes:
    require_seal_font()
    return render_license(_document())


def _run(tool: str, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run([require_tool(tool), *args], input=data, capture_output=True, check=True).stdout


def _page_image(document_pdf: bytes, tmp_path: Path) -> Path:
    source = tmp_path / "license.pdf"
    source.write_bytes(document_pdf)
    _run("pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(source), str(tmp_path / "page"))
    return tmp_path / "page.png"


def _count(image: Image.Image, box_points: tuple[float, float, float, float], test) -> int:
    """Pixels in a box given in PDF points (x0, y0, x1, y1 from the bottom left) that pass ``test``."""
    x0, y0, x1, y1 = box_points
    height = image.height
    crop = image.convert("RGB").crop((int(x0 * SCALE), int(height - y1 * SCALE), int(x1 * SCALE),
                                      int(height - y0 * SCALE)))
    samples = crop.tobytes()
    return sum(1 for pixel in zip(samples[0::3], samples[1::3], samples[2::3]) if test(pixel))


SEAL_BOX = (360, 100, 545, 240)  # around the issuer block, where the seal is


def _reddish(pixel) -> bool:
    r, g, b = pixel
    return r > 150 and g < 110 and b < 110


def _bluish(pixel) -> bool:
    r, g, b = pixel
    return b > 150 and r < 110 and g < 130


def test_one_page_with_every_font_embedded_as_subset_with_unicode_map(pdf):
    info = _run("pdfinfo", "-", data=pdf).decode()
    assert re.search(r"^Pages:\s+1$", info, re.M)
    assert re.search(r"^Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info, re.M)
    lines = _run("pdffonts", "-", data=pdf).decode().splitlines()[2:]
    assert lines, "no font in the PDF"
    for line in lines:
        emb, sub, uni = line.split()[-5:-2]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), line
        assert re.match(r"[A-Z]{6}\+WenQuanYiMicroHei ", line), line


def test_pdftotext_gives_back_every_value_including_the_wrapped_scope(pdf):
    text = _run("pdftotext", "-enc", "UTF-8", "-", "-", data=pdf).decode()
    flat = re.sub(r"\s+", "", text)
    document = _document()
    for label, value in document.fields:
        assert re.sub(r"\s+", "", label) in flat, label
        assert re.sub(r"\s+", "", value) in flat, label
    for value in (document.title_en, document.identifier, document.holder_name, ISSUER, "2024年5月6日", "长期",
                  "扫码核验 / Scan to verify"):
        assert re.sub(r"\s+", "", value) in flat, value
    assert "营 业 执 照" in text  # the spaced title
    # The scope is long enough to wrap: it spans several lines of the page.
    scope_lines = [line for line in text.splitlines() if line and line in SCOPE]
    assert len(scope_lines) >= 8


def test_glyph_widths_in_the_pdf_match_the_layout(pdf):
    """Viewers advance by the font's /W widths; the layout aligned the text with the same widths:
    a centred line is centred and a right-aligned one ends at its margin, as poppler places them."""
    words = re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
                       _run("pdftotext", "-bbox", "-", "-", data=pdf).decode())
    boxes = {text: (float(x0), float(x1)) for x0, x1, text in words}
    left, right = boxes["Business"][0], boxes["License"][1]
    assert abs((left + right) / 2 - render._PAGE_WIDTH / 2) < 0.5
    assert abs(boxes[ISSUER][1] - (render._RIGHT - 6)) < 0.5
    assert abs(boxes["Long-term"][1] - (render._RIGHT - 6)) < 0.5


def test_qr_code_on_the_page_scans_to_exactly_the_url(pdf, tmp_path):
    page = _page_image(pdf, tmp_path)
    decoded = _run("zbarimg", "--raw", "-q", str(page)).decode().rstrip("\n")
    assert decoded == _document().qr_url


def test_qr_code_has_its_quiet_zone(pdf, tmp_path):
    """Four modules of white on every side of the symbol (ISO/IEC 18004), nothing else printed there."""
    page = Image.open(_page_image(pdf, tmp_path))
    x0, y0, size = render._QR_X, render._QR_Y, render._QR_SIZE
    quiet = 4 * size / render._qr_rows(_document().qr_url).size
    band = 1.0  # points kept off the symbol's edge (anti-aliasing)

    def dark(pixel) -> bool:
        return min(pixel) < 200

    for box in ((x0 - quiet, y0 - quiet, x0 - band, y0 + size + quiet),  # left
                (x0 + size + band, y0 - quiet, x0 + size + quiet, y0 + size + quiet),  # right
                (x0 - quiet, y0 - quiet, x0 + size + quiet, y0 - band),  # below
                (x0 - quiet, y0 + size + band, x0 + size + quiet, y0 + size + quiet)):  # above
        assert _count(page, box, dark) == 0, box
    assert _count(page, (x0, y0, x0 + size, y0 + size), dark) > 1000  # and the symbol is there


def test_largest_qr_version_printed_still_scans_at_150_dpi(tmp_path):
    require_seal_font()
    url = _url(380, b"largest")
    assert qr_version(url) == render.MAX_QR_VERSION
    page = _page_image(render_license(_document(qr_url=url)), tmp_path)
    assert _run("zbarimg", "--raw", "-q", str(page)).decode().rstrip("\n") == url


def test_qr_version_for_a_realistic_url():
    url = _url(230)
    assert len(url) == 230
    assert qr_version(url) <= 12
    assert render._qr_rows(url).version == qr_version(url)


@pytest.mark.parametrize("url", [
    _url(40), _url(150), _url(230), _url(260), _url(330, b"other"),
    "https://x.example/v/" + "0123456789" * 8,  # a numeric run: qrcode splits it into a numeric segment
    "HTTPS://X.EXAMPLE/V/" + "ABCDEFGHIJ0123456789" * 5,  # alphanumeric segments
])
def test_qr_symbol_is_qrcodes_own(url):
    """The fast builder gives qrcode's module matrix: same version, code words, mask choice."""
    reference = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    reference.add_data(url)
    reference.make(fit=True)
    rows = render._qr_rows(url)
    assert rows.version == reference.version
    assert [[c == "1" for c in row] for row in rows.rows] == [list(map(bool, r)) for r in reference.get_matrix()]


def test_url_too_long_for_a_readable_qr_code_is_refused():
    with pytest.raises(QrCodeTooLarge) as caught:
        render_license(_document(qr_url=_url(900)))
    assert caught.value.code == "qr_code_too_large" and caught.value.extra["version"] > render.MAX_QR_VERSION


@pytest.mark.parametrize(("change", "field", "character"), [
    ({"fields": (("名称", "某某"), ("经营范围", "技术服务𠀀软件开发"))}, "field '经营范围'", "𠀀"),
    ({"holder_name": "张三😀"}, "holder_name", "😀"),
    ({"issuer_name": "某市\x07局"}, "issuer_name", "\x07"),
])
def test_character_without_glyph_is_refused_naming_the_field(change, field, character):
    require_seal_font()
    with pytest.raises(UnrenderableCharacter) as caught:
        render_license(_document(**change))
    error = caught.value
    assert error.code == "unrenderable_character"
    assert error.extra["field"] == field and error.extra["character"] == character
    assert field in str(error) and f"U+{ord(character):04X}" in str(error)


def test_tabs_and_line_ends_in_values_are_whitespace_and_breaks(tmp_path):
    require_seal_font()
    pdf = render_license(_document(fields=(("住所", "福州市\t鼓楼区\r\n五四路158号"),)))
    text = _run("pdftotext", "-enc", "UTF-8", "-", "-", data=pdf).decode()
    assert "福州市 鼓楼区" in text and "五四路158号" in text


def test_vector_seal_without_an_image(pdf, tmp_path):
    assert _run("pdfimages", "-list", "-", data=pdf).decode().splitlines()[2:] == []  # no image at all
    page = Image.open(_page_image(pdf, tmp_path))
    assert _count(page, SEAL_BOX, _reddish) > 3000  # the red ring, star and the name along the arc
    assert _count(page, SEAL_BOX, _bluish) == 0


def test_png_seal_is_drawn_in_the_issuer_area(tmp_path):
    require_seal_font()
    seal = _seal_png()
    pdf = render_license(_document(seal_image=seal))
    images = _run("pdfimages", "-list", "-", data=pdf).decode().splitlines()[2:]
    kinds = sorted(line.split()[2] for line in images)
    assert kinds == ["image", "smask"]  # the seal and its alpha channel
    assert all(line.split()[3:5] == ["240", "240"] for line in images)
    page = Image.open(_page_image(pdf, tmp_path))
    assert _count(page, SEAL_BOX, _bluish) > 3000
    assert _count(page, SEAL_BOX, _reddish) == 0  # no vector seal as well


def test_seal_png_is_decoded_once_per_process():
    seal = _seal_png((200, 30, 30), 200)
    first = render._prepared_seal(seal)
    assert render._prepared_seal(bytes(seal)) is first  # same content, another bytes object
    assert render._prepared_seal(_seal_png((200, 30, 30), 201)) is not first


def test_unreadable_seal_png_is_refused():
    require_seal_font()
    with pytest.raises(InvalidSealImage):
        render_license(_document(seal_image=b"\x89PNG\r\n\x1a\nnot really"))


def test_same_document_same_bytes_and_dates_from_the_issue_date(pdf):
    assert render_license(_document()) == pdf
    assert render_license(_document(qr_url=_url(seed=b"another"))) != pdf
    assert b"/CreationDate (D:20240506000000+00'00')" in pdf
    assert render_license(_document(issued_on=date(2025, 1, 2))) != pdf


def test_content_that_cannot_fit_one_page_is_refused():
    require_seal_font()
    fields = tuple((f"项目{n}", SCOPE) for n in range(8))
    with pytest.raises(LicenseContentTooLong):
        render_license(_document(fields=fields))


def test_long_table_uses_smaller_type_and_stays_on_one_page():
    require_seal_font()
    fields = _document().fields + (("许可项目", SCOPE), ("备注", SCOPE[:200]))
    pdf = render_license(_document(fields=fields))
    info = _run("pdfinfo", "-", data=pdf).decode()
    assert re.search(r"^Pages:\s+1$", info, re.M)
    assert render._table_layout(fields, render._font()).size < render._TYPE_SIZES[0]


def test_wrapped_lines_fit_the_column_and_respect_line_breaking_rules():
    require_seal_font()
    font = render._font()
    limit = 20 * 1000  # twenty ems
    words = ("info@example.gov.cn", "www.example.gov.cn/licenses", "91350100M000100Y43")
    text = SCOPE + " Contact: " + ", ".join(words) + "。" + "x" * 60  # the last word is longer than a line
    lines = render._wrap(text, limit, font)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for line in lines:
        hanging = len(line) - len(line.rstrip("".join(render._NO_LINE_START)))
        assert font.width(line[:len(line) - hanging]) <= limit, line
        assert line[:1] not in render._NO_LINE_START, line
    for word in words:  # Latin words are not broken
        assert any(word in line for line in lines), word
    assert sum("x" * 20 in line for line in lines) >= 2  # unless longer than a line: then cut


def test_embedded_font_program_has_the_source_outlines():
    """The subset (CID = glyph id, composite glyphs renumbered) draws each character exactly like the
    source font: fontTools reads both and resolves components."""
    require_seal_font()
    font = render._font()
    text = render._Text(font)
    sample = "营业执照经营范围福州市场监督管理局ABCxyz019（），。"
    text.encode(sample)
    program, count = font.subset(text.glyphs)
    subset = TTFont(io.BytesIO(program))
    source = TTFont(str(LICENSE_FONT), fontNumber=0)
    assert subset["maxp"].numGlyphs == count == len(subset.getGlyphOrder())
    subset_glyf, source_glyf = subset["glyf"], source["glyf"]
    source_order, subset_order = source.getGlyphOrder(), subset.getGlyphOrder()
    composites = 0
    for cid, glyph in enumerate(text.glyphs):
        if cid == 0:
            continue
        mine = subset_glyf[subset_order[cid]]
        original = source_glyf[source_order[glyph]]
        composites += original.isComposite()
        assert mine.getCoordinates(subset_glyf)[0] == original.getCoordinates(source_glyf)[0], text.unicode[cid]
        assert subset["hmtx"][subset_order[cid]][0] == source["hmtx"][source_order[glyph]][0]
    assert composites > 0  # WenQuanYi builds many CJK glyphs from components: the renumbering is exercised
