"""The ``eauth`` command line: an entry point like HTTP, translating to the same domain calls."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.cli_audit import audit_app
from api.cli_backup import backup_command, restore_command
from api.cli_documents import documents_app
from api.cli_licenses import license_app, seal_image_command
from api.cli_login import login_command, login_keys_app
from api.cli_verify import trust_app, verify_command
from api.platform import Platform, initialize_platform
from ca.lifecycle import RevocationReason
from ca.profiles import PROFILES, profile
from ca.records import Actor
from ca.subjects import SubjectIdentity
from eauth.errors import EauthError, InvalidInput, NotFound
from eauth.settings import Settings
from store.agencies import SCOPES, add_agency, add_client, agency_by_code, list_agencies
from store.ca_store import SqlCaStore

app = typer.Typer(help="eauth: certificates, electronic licenses and verification for government services.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
agency_app = typer.Typer(help="Agencies (registration authorities, license issuers).", no_args_is_help=True)
client_app = typer.Typer(help="API clients of agencies (OAuth2 client credentials).", no_args_is_help=True)
cert_app = typer.Typer(help="Certificates.", no_args_is_help=True)
app.add_typer(agency_app, name="agency")
app.add_typer(client_app, name="client")
app.add_typer(cert_app, name="cert")
app.add_typer(license_app, name="license")
agency_app.command("seal-image")(seal_image_command)
app.add_typer(trust_app, name="trust")
app.command("verify")(verify_command)
app.add_typer(audit_app, name="audit")
app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.command("login")(login_command)
app.add_typer(login_keys_app, name="login-keys")
app.add_typer(documents_app, name="documents")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _platform() -> Platform:
    return Platform.open(Settings())


@app.command()
def init() -> None:
    """Create the database schema, the keys and the CA hierarchy; a second run changes nothing."""
    settings = Settings()
    result, migrated = initialize_platform(settings)
    if not result.created and not migrated:
        out.print(f"Already initialized ({len(result.existing)} keys and certificates present): nothing changed.")
        return
    if migrated:
        out.print("Database schema brought up to date.")
    for name in result.created:
        out.print(f"created [bold]{name}[/bold]")
    out.print(f"Platform initialized in {escape(str(settings.data_dir))} with {settings.key_backend} keys.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs throughput).")] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    _platform().close()  # refuse to start (wrong passphrase, no init) before binding the port
    uvicorn.run("api.http:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=access_log, proxy_headers=True)


DEMO_AGENCY = ("demo-amr", "演示市场监督管理局 (Demo Administration for Market Regulation)", "114403000000019001")
DEMO_SEAL_NAME = "演示市场监督管理局"


@app.command("seed-demo")
def seed_demo() -> None:
    """Register a demo agency and an API client with every scope; the client's credentials go to
    ``<data dir>/demo-client.json``. Does nothing if the demo agency exists."""
    from api.licenses import license_service
    from licenses.catalog import demo_types

    p = _platform()
    code, name, credit_code = DEMO_AGENCY
    credentials_file = Path(p.settings.data_dir) / "demo-client.json"
    with p.db.session() as session:
        try:
            agency_by_code(session, code)
        except NotFound:
            agency = add_agency(session, code=code, name=name, credit_code=credit_code)
            # Its seal, signing its licenses: an agency-seal certificate whose key the platform keeps.
            seal = p.ca.issue(SqlCaStore(session), profile_name="agency-seal", requested_by=agency.id,
                              subject=SubjectIdentity(profile("agency-seal").subject_kind, DEMO_SEAL_NAME,
                                                      credit_code)).record
            client, secret = add_client(session, agency_code=code, name="demo client", scopes=set(SCOPES))
            _write_new(credentials_file, json.dumps(
                {"client_id": client.client_id, "client_secret": secret, "scopes": sorted(client.scopes)}, indent=1
            ).encode())
        else:
            out.print(f"demo agency {code} already present; credentials in {escape(str(credentials_file))}")
            return
    for license_type in demo_types(code):  # after the agency's transaction: the catalog takes its own
        license_service(p).define_type(license_type, agency_id=agency.id)
    out.print(f"demo agency [bold]{code}[/bold] with seal {seal.serial}, client {client.client_id} and license "
              f"types {', '.join(t.code for t in demo_types(code))} created; credentials in "
              f"{escape(str(credentials_file))}")


@agency_app.command("add")
def agency_add(
    code: Annotated[str, typer.Argument(help="Short unique code, e.g. 'scjg-gd'.")],
    name: Annotated[str, typer.Argument(help="Full name.")],
    credit_code: Annotated[Optional[str], typer.Option(help="Unified social credit code (GB 32100).")] = None,
) -> None:
    """Register an agency."""
    from ca.identifiers import validate_credit_code

    p = _platform()
    with p.db.session() as session:
        agency = add_agency(session, code=code, name=name,
                            credit_code=validate_credit_code(credit_code) if credit_code else None)
    out.print(f"agency [bold]{agency.code}[/bold] registered (id {agency.id})")


@agency_app.command("list")
def agency_list() -> None:
    """List agencies."""
    p = _platform()
    with p.db.session() as session:
        rows = list_agencies(session)
    table = Table("id", "code", "name", "credit code")
    for a in rows:
        table.add_row(str(a.id), a.code, escape(a.name), a.credit_code or "")
    out.print(table)


@client_app.command("add")
def client_add(
    agency: Annotated[str, typer.Argument(help="Agency code.")],
    scope: Annotated[list[str], typer.Option("--scope", help=f"Repeatable. Known: {', '.join(SCOPES)}.")],
    name: Annotated[str, typer.Option(help="What the client is.")] = "api client",
    json_output: Annotated[bool, typer.Option("--json", help="Print the credentials as JSON.")] = False,
) -> None:
    """Register an API client; its secret is printed once and never stored in clear."""
    p = _platform()
    with p.db.session() as session:
        client, secret = add_client(session, agency_code=agency, name=name, scopes=set(scope))
    if json_output:
        print(json.dumps({"client_id": client.client_id, "client_secret": secret, "scopes": sorted(client.scopes)}))
        return
    out.print(f"client_id:     {client.client_id}\nclient_secret: {secret}\nscopes:        {' '.join(sorted(client.scopes))}")
    out.print("[yellow]Store the secret now: it cannot be shown again.[/yellow]")


@cert_app.command("issue")
def cert_issue(
    profile_name: Annotated[str, typer.Option("--profile", help=f"One of: {', '.join(PROFILES)}.")],
    name: Annotated[str, typer.Option(help="Verified subject name.")],
    id_number: Annotated[str, typer.Option(help="Citizen ID or unified social credit code.")],
    agency: Annotated[str, typer.Option(help="Code of the registering agency.")],
    csr: Annotated[Optional[Path], typer.Option(help="PKCS#10 request (PEM or DER) with the holder's key.")] = None,
    p12: Annotated[Optional[Path], typer.Option(help="Without --csr: write the server-made key and certificate here.")] = None,
    p12_password_file: Annotated[Optional[Path], typer.Option(help="File holding the PKCS#12 password.")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the certificate (PEM) here.")] = None,
) -> None:
    """Issue a certificate for a verified subject."""
    prof = profile(profile_name)
    if csr is not None and (p12 is not None or p12_password_file is not None):
        raise InvalidInput("--p12 and --p12-password-file are for a server-made key; not with --csr")
    password = None
    if csr is None and p12_password_file is not None:
        password = p12_password_file.read_text().strip()
    if csr is None and prof.key_custody.value == "holder" and p12 is None:
        raise InvalidInput("without --csr, give --p12 FILE and --p12-password-file for the server-made key")
    p = _platform()
    with p.db.session() as session:
        registrar = agency_by_code(session, agency)
        issued = p.ca.issue(
            SqlCaStore(session),
            profile_name=profile_name,
            subject=SubjectIdentity(prof.subject_kind, name, id_number),
            requested_by=registrar.id,
            csr=csr.read_bytes() if csr else None,
            pkcs12_password=password,
        )
        if issued.pkcs12 is not None:
            # Within the transaction: if the only copy of the key can't be written, nothing is issued.
            _write_new(p12, issued.pkcs12)
    pem = issued.record.certificate.public_bytes(Encoding.PEM)
    if issued.pkcs12 is not None:
        out.print(f"key and certificate written to {escape(str(p12))}")
    if out_file:
        out_file.write_bytes(pem)
    out.print(f"issued serial [bold]{issued.record.serial}[/bold] to {escape(issued.record.subject_dn)}")
    if not out_file and issued.pkcs12 is None:
        sys.stdout.write(pem.decode())


def _write_new(path: Path, data: bytes) -> None:
    try:
        # Created 0600, never readable by others even for a moment: it holds a key or a secret.
        with open(path, "xb", opener=lambda name, flags: os.open(name, flags, 0o600)) as f:
            f.write(data)
    except FileExistsError:
        raise InvalidInput(f"{path} already exists; not overwriting a key file") from None


@cert_app.command("show")
def cert_show(
    serial: Annotated[str, typer.Argument(help="Hex serial number.")],
    pem: Annotated[bool, typer.Option("--pem", help="Print only the PEM certificate.")] = False,
) -> None:
    """Show a certificate and its status."""
    p = _platform()
    with p.db.session() as session:
        record = SqlCaStore(session).certificate(serial)
    if record is None:
        raise NotFound(f"no certificate with serial {serial}")
    if pem:
        sys.stdout.write(record.certificate.public_bytes(Encoding.PEM).decode())
        return
    table = Table(show_header=False)
    for key, value in (
        ("serial", record.serial), ("status", record.status), ("profile", record.profile),
        ("issuer", record.issuer), ("subject", record.subject_dn), ("not before", record.not_before.isoformat()),
        ("not after", record.not_after.isoformat()), ("sha256", record.sha256),
        ("key kept by platform", "yes" if record.key_label else "no"),
        ("revoked at" if record.status == "revoked" else "suspended at",
         record.revoked_at.isoformat() if record.revoked_at else None),
        ("reason", record.revocation_reason),
        ("invalidity date", record.invalidity_date.isoformat() if record.invalidity_date else None),
        ("replaces", record.replaces),
    ):
        if value is not None:
            table.add_row(key, escape(value))
    out.print(table)


# The operator acts on any certificate (Actor(None)); an agency does so over HTTP, on its own only.
OPERATOR = Actor(None)


def _timestamp(value: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {value!r} is not an RFC 3339 date-time (e.g. 2026-11-01T00:00:00Z)") from None


@cert_app.command("revoke")
def cert_revoke(
    serial: Annotated[str, typer.Argument(help="Hex serial number.")],
    reason: Annotated[str, typer.Option(help=f"One of: {', '.join(r.value for r in RevocationReason)}.")]
    = RevocationReason.UNSPECIFIED.value,
    invalidity_date: Annotated[Optional[str], typer.Option(
        help="When the key is known or suspected to have been compromised (RFC 3339, e.g. 2026-11-01T00:00:00Z).")]
    = None,
) -> None:
    """Revoke a certificate for good (from valid or suspended)."""
    parsed_reason = RevocationReason.parse(reason)
    since = _timestamp(invalidity_date, "--invalidity-date") if invalidity_date is not None else None
    p = _platform()
    with p.db.session() as session:
        change = p.lifecycle.revoke(SqlCaStore(session), serial, reason=parsed_reason, actor=OPERATOR,
                                    invalidity_date=since)
    compromised = f", invalid since {change.invalidity_date.isoformat()}" if change.invalidity_date else ""
    out.print(f"revoked serial [bold]{change.serial}[/bold] ({change.reason}) at {change.revoked_at.isoformat()}"
              f"{compromised}", highlight=False)


@cert_app.command("suspend")
def cert_suspend(serial: Annotated[str, typer.Argument(help="Hex serial number.")]) -> None:
    """Put a valid certificate on hold (certificateHold) until reinstated or revoked."""
    p = _platform()
    with p.db.session() as session:
        change = p.lifecycle.suspend(SqlCaStore(session), serial, actor=OPERATOR)
    out.print(f"suspended serial [bold]{change.serial}[/bold] at {change.revoked_at.isoformat()}", highlight=False)


@cert_app.command("reinstate")
def cert_reinstate(serial: Annotated[str, typer.Argument(help="Hex serial number.")]) -> None:
    """Lift a suspension: the certificate is valid again."""
    p = _platform()
    with p.db.session() as session:
        change = p.lifecycle.reinstate(SqlCaStore(session), serial, actor=OPERATOR)
    out.print(f"reinstated serial [bold]{change.serial}[/bold]: valid again", highlight=False)


@cert_app.command("renew")
def cert_renew(
    serial: Annotated[str, typer.Argument(help="Hex serial number of the certificate to renew.")],
    csr: Annotated[Optional[Path], typer.Option(help="PKCS#10 request (PEM or DER) with the new key (re-key).")]
    = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the new certificate (PEM) here.")] = None,
) -> None:
    """Renew a certificate (same key) or re-key it (--csr): a new certificate for the same subject.

    The old one stays valid (revoke it with --reason superseded if it must stop now); the new one
    is printed by `eauth cert show NEW --pem`, or written with --out."""
    request = csr.read_bytes() if csr else None
    p = _platform()
    with p.db.session() as session:
        issued = p.ca.renew(SqlCaStore(session), serial, actor=OPERATOR, csr=request)
    record = issued.record
    if out_file:
        out_file.write_bytes(record.certificate.public_bytes(Encoding.PEM))
    written = f", written to {escape(str(out_file))}" if out_file else ""
    out.print(f"{'re-keyed' if csr else 'renewed'} serial {record.replaces} as [bold]{record.serial}[/bold]"
              f"{written}", highlight=False)


@app.command("sign")
def sign(
    file: Annotated[Path, typer.Argument(help="The PDF to seal.", exists=True, dir_okay=False, readable=True)],
    seal: Annotated[str, typer.Option(help="Hex serial of an agency-seal certificate with a platform-kept key.")],
    level: Annotated[str, typer.Option(help="PAdES level: B-B, B-T, B-LT or B-LTA.")] = "B-LTA",
    certify: Annotated[Optional[str], typer.Option(
        help="Certification signature with DocMDP no-changes or form-filling; default: approval signature.")] = None,
    agency: Annotated[Optional[str], typer.Option(help="Refuse unless the seal was registered by this agency (code).")]
    = None,
    box: Annotated[Optional[str], typer.Option(
        help="Visible seal x,y,width,height in PDF points from the lower-left corner.")] = None,
    page: Annotated[int, typer.Option(help="Page of the visible seal, from 0.")] = 0,
    image: Annotated[Optional[Path], typer.Option(help="PNG seal image shown in --box.")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Where to write the signed PDF "
                                                     "(default: FILE with .signed.pdf); never overwritten.")] = None,
) -> None:
    """Seal a PDF document with an agency's seal, at a PAdES level (timestamp from the platform's TSA,
    revocation data from its own CA)."""
    from api.documents import record_signing, sealer
    from api.routes.documents import parse_box
    from signing.pades import CERTIFY, LEVELS, sign_pdf

    if level not in LEVELS:
        raise InvalidInput(f"--level {level!r}: use one of {', '.join(LEVELS)}")
    if certify is not None and certify not in CERTIFY:
        raise InvalidInput(f"--certify {certify!r}: use one of {', '.join(CERTIFY)}")
    if image is not None and box is None:
        raise InvalidInput("--image needs --box")
    appearance = parse_box(box, page, image.read_bytes() if image else None) if box is not None else None
    target = out_file or file.with_name(file.stem + ".signed.pdf")
    if target.exists():
        raise InvalidInput(f"{target} already exists; not overwriting it")
    p = _platform()
    agency_id = None
    if agency is not None:
        with p.db.session() as session:
            agency_id = agency_by_code(session, agency).id
    spec = sealer(p).seal(seal, agency_id=agency_id, long_term=level in ("B-LT", "B-LTA"))
    signed = sign_pdf(file.read_bytes(), seal=spec, level=level, certify=certify, appearance=appearance,
                      limits=p.settings.pdf_limits)
    try:
        with open(target, "xb") as f:
            f.write(signed)
    except FileExistsError:
        raise InvalidInput(f"{target} already exists; not overwriting it") from None
    except OSError as exc:  # a full disk: no truncated PDF left behind
        target.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    record_signing(p, actor="operator", seal=seal, pdf=file.read_bytes(), signed=signed, level=level)
    out.print(f"sealed with {escape(spec.name)} ({level}{', certified ' + certify if certify else ''}): "
              f"{escape(str(target))}", highlight=False)


crl_app = typer.Typer(help="Certificate revocation lists.", no_args_is_help=True)
app.add_typer(crl_app, name="crl")


@crl_app.command("publish")
def crl_publish(
    ca: Annotated[Optional[str], typer.Option("--ca", help="Only this CA (root, citizen, enterprise, seal).")] = None,
) -> None:
    """Make and publish a new CRL of every CA (or of one), due or not: e.g. from cron, or right after
    revocations that relying parties without OCSP must see before the next scheduled CRL."""
    from api.schedule import crl_publisher
    from store.crl_store import crl_transactions

    p = _platform()
    publisher, transaction = crl_publisher(p), crl_transactions(p.db)
    table = Table("CA", "number", "entries", "this update", "next update")
    for name in [ca] if ca else publisher.issuers(transaction):
        crl = publisher.publish(transaction, name)
        table.add_row(crl.issuer, str(crl.number), f"{crl.entries:,}", crl.this_update.isoformat(),
                      crl.next_update.isoformat())
    out.print(table)


def main() -> None:
    """Run the CLI; a domain error is one line on stderr and a non-zero exit, never a traceback.
    Messages are printed as text, not rich markup: they may quote user input such as ``[/x]``."""
    try:
        app()
    except EauthError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {escape(exc.detail)}", highlight=False)
        sys.exit(2 if exc.kind.value == "configuration" else 1)
    except ValidationError as exc:  # from Settings: an EAUTH_* variable out of range or of the wrong type
        problems = "; ".join(
            f"EAUTH_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"[red]error[/red] (configuration): {escape(problems)}", highlight=False)
        sys.exit(2)
    except OSError as exc:
        message = f"{exc.strerror or exc}: {exc.filename or ''}"
        err.print(f"[red]error[/red]: {escape(message)}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
