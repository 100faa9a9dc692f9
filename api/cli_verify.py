"""``eauth trust export`` (the platform's trust bundle), ``eauth trust import / list / remove``
(mutual recognition, ``api.mutual``) and ``eauth verify`` (offline verification of a
signed PDF or a license QR token with a trust bundle: no network, no database, no data directory).

Exit codes of ``eauth verify``: 0 ``TOTAL_PASSED`` / a genuine QR token; 1 ``TOTAL_FAILED`` / an
invalid or expired token; 2 ``INDETERMINATE``, or the input could not be verified at all (usage, an
unreadable or invalid bundle, not a PDF, an encrypted PDF)."""

from __future__ import annotations

import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from eauth.errors import EauthError, InvalidInput
from verify.bundle import TrustBundle

trust_app = typer.Typer(help="Trust bundles: what relying parties verify against (offline, or to import).",
                        no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_PASSED, EXIT_FAILED, EXIT_INDETERMINATE = 0, 1, 2
_COLOURS = {"TOTAL_PASSED": "green", "TOTAL_FAILED": "red", "INDETERMINATE": "yellow"}


@trust_app.command("export")
def trust_export(
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the bundle here (default: stdout).")]
    = None,
) -> None:
    """Export this platform's trust bundle (roots, CA, OCSP and TSA certificates, QR and login token keys),
    signed with the root key, as JSON."""
    from api.platform import Platform
    from api.trust import trust_bundle
    from eauth.settings import Settings

    p = Platform.open(Settings())
    try:
        bundle = trust_bundle(p)
    finally:
        p.close()
    text = bundle.to_json()
    if out_file is None:
        sys.stdout.write(text)
        return
    out_file.write_text(text, encoding="utf-8")
    err.print(f"trust bundle of {escape(bundle.platform_name)} (id {bundle.platform_id[:16]}…, "
              f"{len(bundle.certificates)} certificates, {len(bundle.qr_public_keys)} QR keys, "
              f"{len(bundle.login_public_keys)} login keys) written to "
              f"{escape(str(out_file))}", highlight=False)


@trust_app.command("import")
def trust_import(
    bundle_file: Annotated[Path, typer.Argument(help="The other platform's trust bundle (its `eauth trust export`).",
                                                show_default=False)],
    name: Annotated[str, typer.Option("--name", help="What this platform calls it (reports name it so).")],
    root_sha256: Annotated[str, typer.Option("--root-sha256", help="The SHA-256 of its root certificate, "
                                             "confirmed with its operator out of band (hex, colons allowed).")],
) -> None:
    """Trust another platform (mutual recognition): its certificates, licenses, QR and login tokens
    then verify here, and reports name it. Refused unless the bundle is signed by its root and the root
    has the fingerprint you confirmed."""
    from api.mutual import import_bundle

    try:
        data = bundle_file.read_bytes()
    except OSError as exc:
        raise _fail("invalid_input", f"cannot read the trust bundle {bundle_file}: {exc.strerror or exc}", 1) from None
    p = _open_platform()
    try:
        done = import_bundle(p, data, name=name, root_sha256=root_sha256, actor="operator")
    except EauthError as exc:
        where = f" at {exc.extra['path']}" if exc.extra.get("path") else ""
        raise _fail(exc.code, f"{bundle_file}{where}: {exc.detail}", 1) from None
    finally:
        p.close()
    out.print(f"trusted [bold]{escape(done.name)}[/bold] (root {done.platform_id[:16]}…, "
              f"{escape(done.base_url or 'no base URL')}): {len(done.bundle.certificates)} certificates, "
              f"{len(done.bundle.qr_public_keys)} QR keys, {len(done.bundle.login_public_keys)} login keys",
              highlight=False)


@trust_app.command("list")
def trust_list() -> None:
    """The platforms this one trusts (imported bundles)."""
    from rich.table import Table

    from api.mutual import list_platforms

    p = _open_platform()
    try:
        platforms = list_platforms(p)
    finally:
        p.close()
    if not platforms:
        out.print("no trusted platforms (import one with `eauth trust import`)")
        return
    table = Table("name", "root SHA-256", "base URL", "imported", "bundle's own name")
    for t in platforms:
        table.add_row(escape(t.name), t.platform_id, escape(t.base_url or "—"), t.imported_at.isoformat(),
                      escape(t.bundle.platform_name))
    out.print(table)


@trust_app.command("remove")
def trust_remove(name: Annotated[str, typer.Argument(help="The name it was imported under.")]) -> None:
    """Stop trusting an imported platform: its certificates, licenses and tokens no longer verify here
    (in every API process within trusted_platforms_refresh_seconds)."""
    from api.mutual import remove_platform

    p = _open_platform()
    try:
        record = remove_platform(p, name, actor="operator")
    finally:
        p.close()
    out.print(f"no longer trusted: [bold]{escape(record.name)}[/bold] (root {record.platform_id[:16]}…)",
              highlight=False)


def _open_platform():
    from api.platform import Platform
    from eauth.settings import Settings

    return Platform.open(Settings())


def _fail(code: str, detail: str, exit_code: int = EXIT_INDETERMINATE) -> typer.Exit:
    err.print(f"[red]error[/red] ({code}): {escape(detail)}", highlight=False)
    return typer.Exit(exit_code)


def _bundle(path: Path) -> TrustBundle:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _fail("invalid_input", f"cannot read the trust bundle {path}: {exc.strerror or exc}") from None
    try:
        return TrustBundle.from_json(data)
    except EauthError as exc:
        where = f" at {exc.extra['path']}" if exc.extra.get("path") else ""
        raise _fail(exc.code, f"{path}{where}: {exc.detail}") from None


def _token(text: str) -> str:
    """A token, or the URL the QR carries (``…/v/{token}``)."""
    text = text.strip()
    return text.rsplit("/v/", 1)[1] if "/v/" in text else text


def verify_command(
    file: Annotated[Optional[Path], typer.Argument(help="The signed PDF to verify.", show_default=False)] = None,
    qr: Annotated[Optional[str], typer.Option("--qr", help="A license QR token (or the URL the QR carries) "
                                              "instead of a PDF.")] = None,
    trust: Annotated[Optional[Path], typer.Option("--trust", help="The trust bundle (JSON from `eauth trust "
                                                  "export` or GET /api/v1/trust-bundle).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON (the API's shape).")] = False,
) -> None:
    """Verify a signed PDF or a license QR token offline, with a trust bundle: no network, no database.
    Exit 0 passed / genuine, 1 failed / invalid, 2 indeterminate or not verifiable."""
    if trust is None:
        raise _fail("invalid_input", "--trust BUNDLE is required: the trust bundle to verify against")
    if (file is None) == (qr is None):
        raise _fail("invalid_input", "give either a PDF file or --qr TOKEN")
    bundle = _bundle(trust)
    if qr is not None:
        _verify_qr(_token(qr), bundle, json_output)
    else:
        _verify_pdf(file, bundle, json_output)


def _verify_qr(token: str, bundle: TrustBundle, json_output: bool) -> None:
    from api.routes.verify import QrLicenseView, QrReportView
    from verify.offline import verify_qr_offline

    report = verify_qr_offline(token, bundle, today=date.today())
    if json_output:
        view = QrReportView(status=report.status, valid=report.valid, signature_valid=report.signature_valid,
                            detail=report.detail, error_code=report.error_code,
                            license=QrLicenseView.model_validate(report.license, from_attributes=True)
                            if report.license else None)
        print(view.model_dump_json(indent=1))
    else:
        colour = "green" if report.status == "genuine" else "red"
        out.print(f"[bold {colour}]{report.status.upper()}[/bold {colour}]  {escape(report.detail)}", highlight=False)
        if report.error_code:
            out.print(f"  error code: {report.error_code}", highlight=False)
        if report.license is not None:
            license = report.license
            until = license.valid_until.isoformat() if license.valid_until else "long-term"
            out.print(f"  license {escape(license.identifier)} (type {escape(license.type_code)}, issuer "
                      f"{escape(license.issuer_code)}), issued {license.issued_on.isoformat()}, valid until {until}",
                      highlight=False)
        out.print(f"  trust bundle: {escape(bundle.platform_name)} ({bundle.platform_id[:16]}…)", highlight=False)
    raise typer.Exit(EXIT_PASSED if report.status == "genuine" else EXIT_FAILED)


def _verify_pdf(file: Path, bundle: TrustBundle, json_output: bool) -> None:
    from api.routes.verify_pdf import PdfReportView
    from verify.offline import verify_pdf_offline

    try:
        pdf = file.read_bytes()
    except OSError as exc:
        raise _fail("invalid_input", f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        report = verify_pdf_offline(pdf, bundle, now=datetime.now(timezone.utc))
    except InvalidInput as exc:  # NotAPdf, EncryptedPdf
        raise _fail(exc.code, f"{file}: {exc.detail}") from None
    if json_output:
        print(PdfReportView.model_validate(report, from_attributes=True).model_dump_json(indent=1))
    else:
        colour = _COLOURS[report.indication]
        sub = f" / {report.sub_indication}" if report.sub_indication else ""
        out.print(f"[bold {colour}]{report.indication}{sub}[/bold {colour}]  {escape(report.detail)}", highlight=False)
        out.print(f"  file {escape(str(file))}: {report.size:,} bytes, {report.revisions} revision(s), "
                  f"SHA-256 {report.sha256}", highlight=False)
        for s in report.signatures:
            signer = s.signer.subject if s.signer else "?"
            when = s.signing_time.timestamp.time.isoformat() if s.signing_time.timestamp else (
                s.signing_time.claimed.isoformat() if s.signing_time.claimed else "?")
            proof = "proven by a timestamp" if s.signing_time.proven else "claimed, not proven"
            out.print(f"  signature {escape(s.field)}: {s.indication}"
                      f"{' / ' + s.sub_indication if s.sub_indication else ''}, level {s.level or '—'}, "
                      f"signer {escape(signer)}, anchor {escape(s.trust_anchor or 'none (untrusted)')}, "
                      f"signed {when} ({proof}), revoked at signing time: {s.revocation.at_signing_time.status}",
                      highlight=False)
            for finding in s.findings:
                out.print(f"    - {escape(finding)}", highlight=False)
        for t in report.document_timestamps:
            out.print(f"  document timestamp {escape(t.field)}: {t.indication}"
                      f"{' at ' + t.timestamp.time.isoformat() if t.timestamp else ''}", highlight=False)
        for finding in report.findings:
            out.print(f"  - {escape(finding)}", highlight=False)
        out.print(f"  offline, against the trust bundle of {escape(bundle.platform_name)} "
                  f"({bundle.platform_id[:16]}…): the signer's current status and the license registry were not "
                  "checked", highlight=False)
    raise typer.Exit({"TOTAL_PASSED": EXIT_PASSED, "TOTAL_FAILED": EXIT_FAILED}.get(report.indication,
                                                                                    EXIT_INDETERMINATE))
