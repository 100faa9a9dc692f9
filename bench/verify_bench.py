"""PDF verification: full verifications per second (``verify.pdf`` report with the registry lookup by
SHA-256 and our CA's current status) of a one-page certified B-LT license, by the API's own process
pool on every core, next to pyHanko's ``validate_pdf_signature`` with a plain ``ValidationContext``
(our root, no fetching) on the same file in one process, measured in the same run (with pyHanko's
and asn1crypto's own hex-string reader and name preparation, which ``verify.pdf`` replaces)."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from api.licenses import issuer_of, license_service
from api.platform import Platform, initialize_platform
from api.pool import executor, worker_platform
from api.verification import verification
from bench.ca_bench import rate
from bench.setup import licensing_agency
from eauth.settings import Settings
from licenses.issuance import Actor
from store.ca_store import SqlCaStore
from verify import pdf as verify_module

AGENCY = ("bench-verify", "某市市场监督管理局", "11330105002500287C")
FIELDS = {"name": "张三", "sex": "男", "nationality": "中国", "birth_date": "1990-01-02",
          "citizen_id": "11010519491231002X", "vehicle_class": "C1", "first_issued_on": "2012-03-04"}


def _verify_for(seconds: float, pdf: bytes) -> int:
    """Pool job: verify ``pdf`` for ``seconds`` in this worker's platform; returns how many."""
    checker, done = verification(worker_platform()), 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        report = checker.verify(pdf)
        assert report.passed and report.registry.byte_identical, report.detail
        done += 1
    return done


def _pool_rate(settings: Settings, pdf: bytes, workers: int, seconds: float) -> float:
    with executor(settings, workers) as pool:
        list(pool.map(_verify_for, [1.0] * workers, [pdf] * workers))  # warm: platform, caches
        start = time.perf_counter()
        counts = list(pool.map(_verify_for, [seconds] * workers, [pdf] * workers))
        return sum(counts) / (time.perf_counter() - start)


@contextmanager
def _pyhanko_as_shipped():
    """pyHanko's own hex-string reader and asn1crypto's own name preparation, for the baseline."""
    fast_hex, fast_prep = generic.read_hex_string_from_stream, asn1_x509.NameTypeAndValue._ldap_string_prep
    generic.read_hex_string_from_stream = verify_module._slow_hex
    asn1_x509.NameTypeAndValue._ldap_string_prep = verify_module._slow_prep
    try:
        yield
    finally:
        generic.read_hex_string_from_stream = fast_hex
        asn1_x509.NameTypeAndValue._ldap_string_prep = fast_prep


def run(*, seconds: float) -> list[dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="eauth-verify-bench-"))
    settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase="bench passphrase")
    initialize_platform(settings)
    platform = Platform.open(settings)
    try:
        code, name, credit = AGENCY
        agency, _, driving = licensing_agency(platform, code=code, name=name, credit_code=credit)
        with platform.db.session() as session:
            root = SqlCaStore(session).authority("root").certificate
        service = license_service(platform)
        issued = service.issue(issuer_of(agency), type_code=driving.code, fields=FIELDS, actor=Actor(agency.id, "b"))
        pdf = service.pdf(issued.version)
        assert verification(platform).verify(pdf).passed

        trust_root = asn1_x509.Certificate.load(root.public_bytes(Encoding.DER))

        def baseline() -> None:
            reader = PdfFileReader(io.BytesIO(pdf))
            context = ValidationContext(trust_roots=[trust_root], allow_fetching=False)
            status = validate_pdf_signature(reader.embedded_signatures[0], context)
            assert status.intact and status.valid

        with _pyhanko_as_shipped():
            base = rate(baseline, seconds)
        one = rate(lambda: verification(platform).verify(pdf), seconds)
        workers = os.cpu_count() or 1
        pooled = _pool_rate(settings, pdf, workers, seconds)
    finally:
        platform.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    base_name = "pyhanko validate_pdf_signature, plain ValidationContext, one process"
    return [
        {"name": f"PDF verifications (B-LT license, full report + registry), process pool of {workers}",
         "ours": pooled, "unit": "/s", "baseline": base, "baseline_name": base_name, "target": "≥ 50 /s",
         "met": pooled >= 50,
         "note": "integrity, diff analysis, chain at the timestamp's time with embedded OCSP/CRL (hard-fail), "
                 "our CA's current status, registry lookup by SHA-256 (SQLite)"},
        {"name": "PDF verifications (B-LT license, full report + registry), one process", "ours": one, "unit": "/s",
         "baseline": base, "baseline_name": base_name, "target": "—", "met": True,
         "note": "fast hex-string reader and cached RFC 4518 name preparation (verify/pdf.py)"},
    ]


if __name__ == "__main__":
    for figure in run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 3.0):
        print(f"{figure['name']}: {figure['ours']:,.1f}{figure['unit']} vs {figure['baseline']:,.1f}"
              f"{figure['unit']} ({figure['baseline_name']}) ratio {figure['ours'] / figure['baseline']:.2f} "
              f"met={figure['met']}")
