"""Limits on the PDFs the platform verifies or signs: pages and objects, read from what the parser has
already done (the catalog's page count and the cross-reference sections) and checked before the heavy
work (chain validation and difference analysis of every revision, or signing).

The size in bytes is bounded before a PDF is even parsed (the request body limit, docs/limits.md); these
bound the work a small file can still ask for: a few MiB of compressed object streams can declare
hundreds of thousands of objects, each one parsed and compared by the difference analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

from eauth.errors import PdfTooComplex


@dataclass(frozen=True, slots=True)
class PdfLimits:
    """The most pages (the page tree's declared /Count) and objects (cross-reference entries over every
    revision) a PDF may have."""

    max_pages: int = 2_000
    max_objects: int = 200_000


DEFAULT_PDF_LIMITS = PdfLimits()


def pdf_objects(reader) -> int:
    """Objects a pyHanko ``PdfFileReader`` found in its cross-reference sections, every revision (and
    hybrid section) counted: no object is read for it."""
    xrefs = reader.xrefs
    total = 0
    for revision in range(xrefs.total_revisions):
        data = xrefs.get_xref_data(revision)
        total += len(data.explicit_refs_in_revision)
        if data.hybrid is not None:
            total += len(data.hybrid.xref_data.explicit_refs_in_revision)
    return total


def check_pdf_limits(reader, limits: PdfLimits) -> None:
    """PdfTooComplex (extra ``limit``: pages or objects, ``found``, ``allowed``) if the document read by
    ``reader`` is over ``limits``. A page count that is not a number raises TypeError or ValueError,
    as a broken document does elsewhere."""
    objects = pdf_objects(reader)
    if objects > limits.max_objects:
        raise PdfTooComplex(f"the PDF has {objects} objects; at most {limits.max_objects} are accepted",
                            limit="objects", found=objects, allowed=limits.max_objects)
    pages = int(reader.root["/Pages"]["/Count"])
    if pages > limits.max_pages:
        raise PdfTooComplex(f"the PDF declares {pages} pages; at most {limits.max_pages} are accepted",
                            limit="pages", found=pages, allowed=limits.max_pages)
