"""Documents: an agency seals its own PDF (电子公文) with its agency-seal certificate.

``POST /api/v1/documents/sign`` takes ``multipart/form-data`` (``file``: the PDF; ``image``: optional
PNG seal image for the visible seal) and the options as query parameters, and answers the signed PDF
(``application/pdf``). Multipart rather than a raw ``application/pdf`` body so that the seal image
travels in the same request. The body limit of this path is ``max_document_bytes`` (20 MiB by default),
every other route keeps the small ``max_request_bytes`` (``api/limits.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import scoped
from api.documents import record_signing, sign_job
from api.licenses import stored_seal_image
from api.pool import WorkerPool
from api.tokens import AccessToken
from eauth.errors import InvalidInput
from signing.pades import Appearance

SIGN_PATH = "/api/v1/documents/sign"
PDF = "application/pdf"

router = APIRouter(prefix="/api/v1/documents", tags=["documents"])


def parse_box(box: str, page: int, image: bytes | None) -> Appearance:
    """``x,y,width,height`` in PDF points from the page's lower-left corner."""
    try:
        x, y, width, height = (float(part) for part in box.split(","))
    except ValueError:
        raise InvalidInput(f"box {box!r} must be four numbers: x,y,width,height (PDF points)") from None
    return Appearance(page=page, x=x, y=y, width=width, height=height, image=image)


@router.post(
    "/sign",
    summary="Seal a PDF document with the agency's seal",
    response_class=Response,
    responses={200: {"content": {PDF: {}}, "description": "The signed PDF (the upload plus an incremental update)."}},
)
async def sign_document(
    request: Request,
    token: Annotated[AccessToken, Depends(scoped("documents:sign"))],
    file: Annotated[UploadFile, File(description="The PDF to seal.")],
    seal: Annotated[str, Query(pattern="^[0-9a-fA-F]{1,40}$",
                               description="Hex serial of the agency's own agency-seal certificate.")],
    level: Annotated[Literal["B-B", "B-T", "B-LT", "B-LTA"], Query(description="PAdES baseline level.")] = "B-LTA",
    certify: Annotated[Literal["no-changes", "form-filling"] | None, Query(
        description="Certification signature with this DocMDP permission; omit for an approval signature.")] = None,
    page: Annotated[int, Query(description="Page of the visible seal, from 0 (with box).")] = 0,
    box: Annotated[str | None, Query(
        description="Visible seal x,y,width,height in PDF points from the lower-left corner; omit for an invisible "
                    "signature.", examples=["380,40,180,60"])] = None,
    image: Annotated[UploadFile | None, File(
        description="PNG seal image shown in the box; default the agency's stored seal image (PUT "
                    "/api/v1/agency/seal-image), else the name and time alone.")] = None,
) -> Response:
    """Sign the uploaded PDF with the seal ``seal``: an agency-seal certificate the calling agency
    registered, its key kept by the platform. B-T and up carry a timestamp from the platform's TSA,
    B-LT and up the chain with OCSP responses and CRLs (from the platform's own CA), B-LTA a document
    timestamp over all of it."""
    # The ~20-100 ms of CPU of a signature (sync pyHanko) run in the app's process pool (``api/pool.py``,
    # ``EAUTH_SIGNING_PROCESSES``): not on the event loop, and not in threads, which the GIL serializes.
    picture = await image.read() if image is not None else None
    if box is None and picture is not None:
        raise InvalidInput("a seal image needs a box to be shown in")
    if box is not None and picture is None:
        picture = stored_seal_image(request.app.state.platform, token.agency_id)
    appearance = parse_box(box, page, picture) if box is not None else None
    pdf = await file.read()
    pool: WorkerPool = request.app.state.signing_pool
    signed = await pool.run(sign_job, pdf, seal, token.agency_id, level, certify, appearance)
    await run_in_threadpool(record_signing, request.app.state.platform, actor=f"client:{token.client_id}", seal=seal,
                            pdf=pdf, signed=signed, level=level)
    return Response(signed, media_type=PDF, headers={"Content-Disposition": 'attachment; filename="signed.pdf"'})
