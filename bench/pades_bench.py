"""PAdES: one-page PDFs sealed per second at B-B, B-T and B-LT through ``signing.pades`` (key-store
signer, in-process TSA, revocation data from our own CA), next to a plain ``pyhanko.sign.signers.sign_pdf``
call with ``SimpleSigner`` (B-B, same key and certificate) measured in the same run. One core."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from api.documents import sealer
from api.platform import Platform, initialize_platform
from api.pool import executor, worker_platform
from bench.ca_bench import rate
from ca.profiles import SubjectKind
from ca.subjects import SubjectIdentity
from eauth.settings import Settings
from signing.pades import sign_pdf
from store.agencies import add_agency
from store.ca_store import SqlCaStore

CREDIT_CODE = "91350100M000100Y43"  # a GB 32100 example code


def _one_page() -> bytes:
    writer = PdfFileWriter()
    content = writer.add_object(generic.StreamObject(stream_data=b"0 0 1 rg 72 700 200 50 re f"))
    writer.insert_page(PageObject(contents=content, media_box=(0, 0, 595, 842)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _sign_for(seconds: float, level: str, serial: str, agency_id: int) -> int:
    """Pool job: sign one-page PDFs for ``seconds`` in this worker's platform (``api.pool.open_worker``)."""
    documents, pdf, done = sealer(worker_platform()), _one_page(), 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        spec = documents.seal(serial, agency_id=agency_id, long_term=level != "B-T")
        sign_pdf(pdf, seal=spec, level=level)
        done += 1
    return done


def _pool_rate(settings: Settings, serial: str, agency_id: int, level: str, seconds: float, workers: int) -> float:
    """Signatures per second of the API's own process pool (spawned workers, one platform each)."""
    with executor(settings, workers) as pool:
        list(pool.map(_sign_for, [0.5] * workers, [level] * workers, [serial] * workers, [agency_id] * workers))
        start = time.perf_counter()  # every worker warmed up above
        counts = list(pool.map(_sign_for, [seconds] * workers, [level] * workers, [serial] * workers,
                               [agency_id] * workers))
        return sum(counts) / (time.perf_counter() - start)


def run(*, seconds: float) -> list[dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="eauth-pades-bench-"))
    settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase="bench passphrase")
    initialize_platform(settings)
    platform = Platform.open(settings)
    try:
        with platform.db.session() as session:
            agency = add_agency(session, code="bench", name="Bench agency", credit_code=None)
            record = platform.ca.issue(SqlCaStore(session), profile_name="agency-seal", requested_by=agency.id,
                                       subject=SubjectIdentity(SubjectKind.AGENCY, "某市人民政府", CREDIT_CODE)).record
        pdf = _one_page()
        documents = sealer(platform)

        def ours(level: str):
            def sign() -> None:
                spec = documents.seal(record.serial, agency_id=agency.id, long_term=level == "B-LT")
                sign_pdf(pdf, seal=spec, level=level)
            return sign

        # The baseline: pyHanko as its documentation shows it, the same key loaded into a SimpleSigner.
        key = platform.keys.signer(record.key_label).private_key
        simple = signers.SimpleSigner(
            signing_cert=asn1_x509.Certificate.load(record.der),
            signing_key=asn1_keys.PrivateKeyInfo.load(
                key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())),
            cert_registry=SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(
                documents.seal_ca.public_bytes(Encoding.DER))]),
        )

        def baseline() -> None:
            signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)),
                             signers.PdfSignatureMetadata(field_name="Signature1"), signer=simple)

        base = rate(baseline, seconds)
        rates = {level: rate(ours(level), seconds) for level in ("B-B", "B-T", "B-LT")}
        workers = os.cpu_count() or 1
        pooled = _pool_rate(settings, record.serial, agency.id, "B-LT", seconds, workers)
    finally:
        platform.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    name = "pyhanko sign_pdf + SimpleSigner, B-B"
    notes = {
        "B-B": "key-store signer, bytes_reserved, no second signing for the size estimate",
        "B-T": "+ RFC 3161 token from the in-process TSA",
        "B-LT": "+ OCSP (seal, TSA) and CRLs (root, seal CA) from our CA, DSS in the signature's revision",
    }
    pool_figure = {
        "name": f"PAdES B-LT, process pool of {workers} (one per core)", "ours": pooled, "unit": "/s",
        "baseline": rates["B-LT"], "baseline_name": "B-LT in one process", "target": f"≥ {0.8 * workers:.1f}× one process",
        "met": pooled >= 0.8 * workers * rates["B-LT"], "note": "each worker opens the platform once",
    }
    return [
        {"name": f"PAdES {level} one-page PDFs signed (one core, ECDSA P-256 file key)", "ours": value, "unit": "/s",
         "baseline": base, "baseline_name": name,
         "target": "≥ 3× baseline" if level == "B-LT" else "—",
         "met": value >= 3 * base if level == "B-LT" else True, "note": notes[level]}
        for level, value in rates.items()
    ] + [pool_figure]


if __name__ == "__main__":
    for figure in run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 2.0):
        print(f"{figure['name']}: {figure['ours']:,.1f}{figure['unit']} vs {figure['baseline']:,.1f}"
              f"{figure['unit']} ({figure['baseline_name']}) ratio {figure['ours'] / figure['baseline']:.2f}")
