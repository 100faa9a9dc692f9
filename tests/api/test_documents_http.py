"""POST /api/v1/documents/sign: an agency seals its own PDF; bad input as problem+json; body limits."""

from __future__ import annotations

import asyncio
import io

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from api.documents import sealer
from store.agencies import add_agency
from tests.conftest import require_seal_font, token_for
from tests.pdf_helpers import issue_seal, one_page_pdf, png

URL = "/api/v1/documents/sign"


@pytest.fixture(scope="module")
def seal_agency(platform):
    with platform.db.session() as session:
        return add_agency(session, code="doc-seal", name="某市人民政府", credit_code=None)


@pytest.fixture(scope="module")
def seal_serial(platform, seal_agency) -> str:
    return issue_seal(platform, seal_agency.id, name="某市人民政府").serial


@pytest.fixture(scope="module")
def headers(api, platform, seal_agency) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(api, platform, seal_agency.code, {'documents:sign'})}"}


def _root(platform) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(sealer(platform).root.public_bytes(Encoding.DER))


def _post(api, headers, params, pdf=None, image=None):
    files = {"file": ("doc.pdf", one_page_pdf() if pdf is None else pdf, "application/pdf")}
    if image is not None:
        files["image"] = ("seal.png", image, "image/png")
    return api.post(URL, headers=headers, params=params, files=files)


@pytest.mark.parametrize("level", ["B-B", "B-LTA"])
def test_sign_returns_a_valid_pdf(api, platform, headers, seal_serial, level):
    require_seal_font()
    response = _post(api, headers, {"seal": seal_serial, "level": level, "certify": "no-changes",
                                    "page": 0, "box": "380,40,180,60"}, image=png())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    reader = PdfFileReader(io.BytesIO(response.content))
    signature = reader.embedded_signatures[0]
    assert signature.docmdp_level == MDPPerm.NO_CHANGES
    assert len(reader.embedded_signatures) == (2 if level == "B-LTA" else 1)
    context = ValidationContext(trust_roots=[_root(platform)], allow_fetching=False)
    status = asyncio.run(async_validate_pdf_signature(signature, context))
    assert status.intact and status.valid and status.trusted


def test_default_level_is_b_lta_and_approval(api, headers, seal_serial):
    response = _post(api, headers, {"seal": seal_serial})
    assert response.status_code == 200, response.text
    reader = PdfFileReader(io.BytesIO(response.content))
    assert reader.embedded_signatures[0].docmdp_level is None
    assert reader.embedded_signatures[1].sig_object_type == "/DocTimeStamp"


def _problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_bad_documents(api, headers, seal_serial):
    params = {"seal": seal_serial, "level": "B-B"}
    _problem(_post(api, headers, params, pdf=b"not a pdf at all"), 400, "not_a_pdf")
    _problem(_post(api, headers, params, pdf=one_page_pdf(encrypt="pw")), 400, "encrypted_pdf")
    certified = _post(api, headers, params | {"certify": "no-changes"})
    assert certified.status_code == 200
    _problem(_post(api, headers, params, pdf=certified.content), 400, "document_locked")
    _problem(_post(api, headers, params | {"page": 3, "box": "10,10,100,40"}), 400, "page_out_of_range")
    _problem(_post(api, headers, params | {"box": "500,10,200,40"}), 400, "seal_box_off_page")
    _problem(_post(api, headers, params | {"box": "1,2,3"}), 400, "invalid_input")
    _problem(_post(api, headers, params | {"box": "10,10,100,40"}, image=b"GIF89a"), 400, "invalid_seal_image")
    _problem(_post(api, headers, params | {"level": "B-X"}), 422, "invalid_request")


def test_only_the_agencys_own_seal(api, platform, headers, agency):
    other = issue_seal(platform, agency.id, name="另一个机关")  # registered by another agency
    _problem(_post(api, headers, {"seal": other.serial}), 400, "no_seal_key")
    _problem(_post(api, headers, {"seal": "abcdef"}), 400, "no_seal_key")


def test_scope_required(api, platform, seal_agency, seal_serial):
    token = token_for(api, platform, seal_agency.code, {"certificates:read"})
    response = _post(api, {"Authorization": f"Bearer {token}"}, {"seal": seal_serial})
    _problem(response, 403, "insufficient_scope")
    _problem(api.post(URL, params={"seal": seal_serial}, files={"file": ("a.pdf", b"%PDF-", "application/pdf")}),
             401, "invalid_token")


def test_body_limits(api, platform, headers, seal_serial):
    """Documents up to max_document_bytes; every other route keeps max_request_bytes."""
    settings = platform.settings
    assert settings.max_document_bytes > settings.max_request_bytes
    # A PDF above the JSON limit but within the document limit gets through to the signer.
    padded = one_page_pdf(padding=settings.max_request_bytes + 10)
    response = _post(api, headers, {"seal": seal_serial, "level": "B-B"}, pdf=padded)
    assert response.status_code == 200, response.text
    huge = b"%PDF-1.7\n" + b"0" * (settings.max_document_bytes + 1)
    _problem(_post(api, headers, {"seal": seal_serial}, pdf=huge), 413, "request_too_large")
    _problem(api.post("/api/v1/certificates", headers=headers, content=b"{" + b" " * (settings.max_request_bytes + 1),
                      ), 413, "request_too_large")


# The process pool (api/pool.py): jobs are module-level functions, so that spawned workers import them.

def _meet(directory: str, parties: int) -> int:
    """Job: note this worker's PID, wait until ``parties`` jobs are running at once, answer the PID."""
    import os
    import time
    from pathlib import Path

    Path(directory, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(directory).iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def _crash(*args) -> bytes:
    import os

    os._exit(1)


def test_concurrent_jobs_run_in_different_worker_processes(api, tmp_path):
    """Two jobs that can only finish together (each waits for the other) run in two worker PIDs."""
    import os

    pool = api.app.state.signing_pool

    async def both():
        return await asyncio.gather(pool.run(_meet, str(tmp_path), 2), pool.run(_meet, str(tmp_path), 2))

    pids = api.portal.call(both)
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_concurrent_requests_are_signed(api, headers, seal_serial):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as threads:
        responses = list(threads.map(lambda _: _post(api, headers, {"seal": seal_serial, "level": "B-B"}), range(2)))
    assert [r.status_code for r in responses] == [200, 200]


def test_domain_error_from_the_worker_is_problem_json(api, headers, seal_serial):
    response = _post(api, headers, {"seal": seal_serial, "level": "B-B", "page": 3, "box": "10,10,100,40"})
    _problem(response, 400, "page_out_of_range")
    assert response.json() == {
        "type": "https://eauth.example/problems/page_out_of_range", "title": "No such page in the PDF",
        "status": 400, "code": "page_out_of_range", "instance": URL,
        "detail": "page 3 does not exist: the PDF has 1 page(s), numbered from 0",
    }


def test_worker_crash_is_503_and_the_pool_is_made_anew(api, headers, seal_serial, monkeypatch):
    import api.routes.documents as route

    pool = api.app.state.signing_pool
    before = pool._executor
    with monkeypatch.context() as patch:
        patch.setattr(route, "sign_job", _crash)
        response = _post(api, headers, {"seal": seal_serial, "level": "B-B"})
    _problem(response, 503, "signing_unavailable")
    assert response.headers["retry-after"] == "5"
    assert pool._executor is not before
    assert _post(api, headers, {"seal": seal_serial, "level": "B-B"}).status_code == 200


def test_the_agencys_stored_seal_image_is_used_without_an_upload(api, platform, licensing):
    """PUT /api/v1/agency/seal-image once; a visible seal without an uploaded image then shows it."""
    require_seal_font()
    headers = {"Authorization": f"Bearer {token_for(api, platform, licensing.agency.code, {'documents:sign'})}"}

    def images_in_the_seal(response) -> int:
        assert response.status_code == 200, response.text
        return response.content.count(b"/Subtype /Image")  # the appearance's image XObjects (not compressed)

    params = {"seal": licensing.seal.serial, "level": "B-B", "box": "380,40,180,60"}
    before = images_in_the_seal(_post(api, headers, params))
    stored = api.put("/api/v1/agency/seal-image", files={"image": ("seal.png", png(48, 48), "image/png")},
                     headers=licensing.headers)
    assert stored.status_code == 204
    assert images_in_the_seal(_post(api, headers, params)) > before
