"""The RFC 3161 TSA: tokens per second in process, through pyHanko's TimeStamper, and over HTTP, next
to a bare ECDSA signature of the same TSTInfo bytes. The issue names no target: these are reported."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
from asn1crypto import tsp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from api.platform import Platform, initialize_platform
from bench.ca_bench import _wrk, rate
from bench.server import serve
from eauth.settings import Settings
from signing.timestamper import InProcessTimeStamper
from signing.tsa import TimeStampResp

DIGEST = hashlib.sha256(b"a one-page license").digest()


def _query(*, cert_req: bool) -> bytes:
    """What ``openssl ts -query -sha256 [-cert]`` sends: SHA-256 imprint, 64-bit nonce."""
    return tsp.TimeStampReq({
        "version": 1,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": DIGEST},
        "nonce": 0x1BBE1E7FD1B50D37,
        "cert_req": cert_req,
    }).dump()


def _http_rates(env: dict[str, str], body: bytes, seconds: float, workers: int = 2) -> tuple[float, float]:
    """(tokens/s over POST /tsa, GET /.well-known/jwks.json/s) against `eauth serve --workers N`, by wrk."""
    with serve(env, workers=workers) as base, tempfile.TemporaryDirectory(prefix="eauth-tsa-wrk-") as scratch:
        query_file = Path(scratch, "q.tsq")
        query_file.write_bytes(body)
        script = Path(scratch, "tsa.lua")
        # The DER query is binary: wrk's Lua reads it from the file rather than from a string literal.
        script.write_text(
            f'local f = assert(io.open("{query_file}", "rb"))\n'
            "wrk.body = f:read(\"*a\")\n"
            "f:close()\n"
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/timestamp-query"\n'
        )
        check = httpx.post(base + "/tsa", content=body, headers={"Content-Type": "application/timestamp-query"})
        if TimeStampResp.load(check.content)["status"]["status"].native != "granted":
            raise RuntimeError("the TSA under test did not grant the benchmark query")
        tokens = _wrk(base + "/tsa", seconds, script=script)
        trivial = _wrk(base + "/.well-known/jwks.json", seconds)
        return tokens, trivial


def run(*, seconds: float) -> list[dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="eauth-tsa-bench-"))
    env = {"EAUTH_DATA_DIR": str(data_dir), "EAUTH_KEY_PASSPHRASE": "bench passphrase"}
    settings = Settings(_env_file=None, data_dir=data_dir, key_passphrase=env["EAUTH_KEY_PASSPHRASE"])
    initialize_platform(settings)
    platform = Platform.open(settings)
    try:
        tsa = platform.timestamp_authority()
        with_certs, without_certs = _query(cert_req=True), _query(cert_req=False)
        # The baseline signs exactly the TSTInfo a token carries, with the same key, and nothing else.
        response = tsp.TimeStampResp.load(tsa.respond(with_certs))
        tst_info = response["time_stamp_token"]["content"]["encap_content_info"]["content"].contents
        key = tsa.signer.private_key

        def bare_sign() -> None:
            key.sign(tst_info, ec.ECDSA(hashes.SHA256()))

        timestamper = InProcessTimeStamper(tsa)
        loop = asyncio.new_event_loop()

        def through_pyhanko() -> None:
            loop.run_until_complete(timestamper.async_timestamp(DIGEST, "sha256"))

        baseline = rate(bare_sign, seconds)
        ours = rate(lambda: tsa.respond(with_certs), seconds)
        no_certs = rate(lambda: tsa.respond(without_certs), seconds)
        pyhanko = rate(through_pyhanko, seconds)
        loop.close()
    finally:
        platform.close()
    bare = "cryptography ECDSA P-256 sign of the same TSTInfo"
    figures = [
        {"name": "TSA tokens in process (DER query → DER reply, certReq, ECDSA P-256 file key)", "ours": ours,
         "unit": "/s", "baseline": baseline, "baseline_name": bare, "target": "—", "met": True,
         "note": "parse + check the query, TSTInfo, CMS SignedData with 3 signed attributes and 2 certificates"},
        {"name": "TSA tokens in process, no certReq", "ours": no_certs, "unit": "/s", "baseline": baseline,
         "baseline_name": bare, "target": "—", "met": True},
        {"name": "TSA tokens through pyHanko's TimeStamper (in process)", "ours": pyhanko, "unit": "/s",
         "baseline": baseline, "baseline_name": bare, "target": "—", "met": True,
         "note": "what B-T signing pays per token: asked of the TSA directly, no query or reply"},
    ]
    if shutil.which("wrk") is None:
        figures.append({"name": "TSA tokens over HTTP", "ours": 0.0, "unit": "/s", "baseline": None,
                        "baseline_name": None, "target": "—", "met": True,
                        "note": "wrk not installed (apt-get install wrk)"})
    else:
        tokens, trivial = _http_rates(env, with_certs, seconds)
        figures.append({"name": "TSA tokens over HTTP (POST /tsa, 2 workers, wrk -c32)", "ours": tokens, "unit": "/s",
                        "baseline": trivial, "baseline_name": "GET /.well-known/jwks.json, same server",
                        "target": "—", "met": True})
    shutil.rmtree(data_dir, ignore_errors=True)
    return figures


if __name__ == "__main__":
    for figure in run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 2.0):
        print(f"{figure['name']}: {figure['ours']:,.0f}{figure['unit']}"
              + (f" vs {figure['baseline']:,.0f}{figure['unit']} ({figure['baseline_name']})" if figure["baseline"] else ""))
