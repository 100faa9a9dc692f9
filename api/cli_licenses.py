"""``eauth license …``: the license catalog, issuance and lifecycle from the command line (the operator
acting for an agency), translating to the same domain calls as HTTP."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.licenses import blob_store, issuer_of, license_service, set_seal_image
from api.platform import Platform
from eauth.errors import InvalidInput, NotFound
from eauth.settings import Settings
from licenses.catalog import LicenseType
from licenses.issuance import Actor, effective_status
from signing.pades import seal_image
from store.agencies import agency_by_code
from store.license_store import SqlLicenseStore

license_app = typer.Typer(help="Electronic licenses: catalog, issuance, lifecycle, bulk import.", no_args_is_help=True)
type_app = typer.Typer(help="License types (the catalog).", no_args_is_help=True)
license_app.add_typer(type_app, name="type")

out = Console(soft_wrap=True)
OPERATOR = Actor(agency_id=None, name="operator")


def _platform() -> Platform:
    return Platform.open(Settings())


def _json_file(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not JSON {what}: {exc}") from None


def _fields(fields_file: Path | None, assignments: list[str]) -> dict[str, str]:
    fields = _json_file(fields_file, "field values") if fields_file else {}
    if not isinstance(fields, dict):
        raise InvalidInput(f"{fields_file} must hold a JSON object of field values")
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            raise InvalidInput(f"--field {assignment!r} must be NAME=VALUE")
        fields[name.strip()] = value
    return fields


@type_app.command("add")
def type_add(
    file: Annotated[Path, typer.Argument(help="The type as JSON (LicenseType.to_json; see `eauth license type show`).")],
) -> None:
    """Add a license type to the catalog, owned by the agency its ``agency_code`` names."""
    license_type = LicenseType.from_json(_json_file(file, "license type"))
    p = _platform()
    with p.db.session() as session:
        agency = agency_by_code(session, license_type.agency_code)
    license_service(p).define_type(license_type, agency_id=agency.id)
    out.print(f"license type [bold]{license_type.code}[/bold] {escape(license_type.name_zh)} added for {agency.code}")


@type_app.command("list")
def type_list() -> None:
    """List the catalog."""
    p = _platform()
    with p.db.transaction() as connection:
        records = SqlLicenseStore(connection).license_types()
    table = Table("code", "name", "agency", "holder", "fields")
    for record in records:
        spec = record.spec
        table.add_row(record.code, f"{spec['name_zh']} / {spec['name_en']}", spec["agency_code"],
                      spec["holder_kind"], str(len(spec["fields"])))
    out.print(table)


@type_app.command("show")
def type_show(code: Annotated[str, typer.Argument(help="Type code.")]) -> None:
    """Print a type as JSON (the format `type add` reads)."""
    p = _platform()
    with p.db.transaction() as connection:
        record = SqlLicenseStore(connection).license_type(code)
    if record is None:
        raise NotFound(f"no license type {code!r} in the catalog")
    print(json.dumps(record.spec, ensure_ascii=False, indent=1))


@license_app.command("issue")
def issue(
    type_code: Annotated[str, typer.Option("--type", help="License type code.")],
    agency: Annotated[str, typer.Option(help="Code of the issuing agency (it must own the type).")],
    fields_file: Annotated[Optional[Path], typer.Option("--fields", help="JSON object of field values.")] = None,
    field: Annotated[Optional[list[str]], typer.Option("--field", help="NAME=VALUE; repeatable, after --fields.")] = None,
    request_key: Annotated[Optional[str], typer.Option(help="Idempotency key: the same key again returns the same license.")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Also write the signed PDF here.")] = None,
) -> None:
    """Issue one license: validated, rendered, signed with the agency's seal (B-LT, certified), stored."""
    if out_file is not None and out_file.exists():
        raise InvalidInput(f"{out_file} already exists; not overwriting it")
    values = _fields(fields_file, field or [])
    p = _platform()
    with p.db.session() as session:
        issuer = agency_by_code(session, agency)
    service = license_service(p)
    issued = service.issue(issuer_of(issuer), type_code=type_code, fields=values,
                           actor=Actor(agency_id=issuer.id, name="operator"), request_key=request_key)
    if out_file is not None:
        out_file.write_bytes(service.pdf(issued.version))
    verb = "issued" if issued.created else "already issued for this request key:"
    out.print(f"{verb} [bold]{issued.license.identifier}[/bold] (id {issued.license.id}) to "
              f"{escape(issued.license.holder_name)}", highlight=False)


@license_app.command("show")
def show(license_ref: Annotated[str, typer.Argument(help="License id or identifier (any version).")]) -> None:
    """A license's status, versions and events."""
    p = _platform()
    with p.db.transaction() as connection:
        store = SqlLicenseStore(connection)
        found = store.license_by_identifier(license_ref.upper()) if "." in license_ref else None
        license = found[0] if found else store.license(license_ref)
        if license is None:
            raise NotFound(f"no license {license_ref!r}")
        versions = [store.version(license.id, n) for n in range(1, license.version + 1)]
        events = store.events(license.id)
    out.print(f"[bold]{license.identifier}[/bold]  {license.type_code}  holder {escape(license.holder_name)}  "
              f"status [bold]{effective_status(license, date.today())}[/bold]"
              + (f" ({escape(license.status_reason)})" if license.status_reason else ""), highlight=False)
    table = Table("version", "identifier", "issued", "valid until", "PDF sha256")
    for v in versions:
        table.add_row(str(v.version), v.identifier, v.issued_on.isoformat(),
                      v.valid_until.isoformat() if v.valid_until else "长期", v.pdf_sha256[:16] + "…")
    out.print(table)
    history = Table("at", "action", "version", "actor", "reason")
    for e in events:
        history.add_row(e.at.isoformat(timespec="seconds"), e.action, str(e.version), e.actor, e.reason or "")
    out.print(history)


@license_app.command("pdf")
def pdf(
    license_id: Annotated[str, typer.Argument(help="License id.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the PDF.")],
    version: Annotated[Optional[int], typer.Option(help="A version; default the current one.")] = None,
) -> None:
    """Write a license's signed PDF exactly as issued."""
    if out_file.exists():
        raise InvalidInput(f"{out_file} already exists; not overwriting it")
    p = _platform()
    with p.db.transaction() as connection:
        store = SqlLicenseStore(connection)
        license = store.license(license_id)
        record = store.version(license_id, version or license.version) if license else None
    if record is None:
        raise NotFound(f"no license {license_id}" + (f" version {version}" if version else ""))
    out_file.write_bytes(blob_store(p).get(record.pdf_sha256))
    out.print(f"{record.identifier}: {escape(str(out_file))}", highlight=False)


@license_app.command("amend")
def amend(
    license_id: Annotated[str, typer.Argument(help="License id.")],
    agency: Annotated[str, typer.Option(help="Code of the issuing agency.")],
    fields_file: Annotated[Optional[Path], typer.Option("--fields", help="JSON object of all the new field values.")] = None,
    field: Annotated[Optional[list[str]], typer.Option("--field", help="NAME=VALUE; repeatable, after --fields.")] = None,
) -> None:
    """A new version with new field values (same holder), signed anew; the old one is superseded."""
    values = _fields(fields_file, field or [])
    p = _platform()
    with p.db.session() as session:
        issuer = agency_by_code(session, agency)
    amended = license_service(p).amend(license_id, issuer_of(issuer), fields=values,
                                       actor=Actor(agency_id=issuer.id, name="operator"))
    out.print(f"amended: [bold]{amended.license.identifier}[/bold]", highlight=False)


def _status_command(action: str, help_text: str) -> None:
    def change(
        license_id: Annotated[str, typer.Argument(help="License id.")],
        reason: Annotated[Optional[str], typer.Option(help="Why (required to revoke).")] = None,
    ) -> None:
        changed = license_service(_platform()).change_status(license_id, action, actor=OPERATOR, reason=reason)
        out.print(f"{changed.identifier}: [bold]{changed.status}[/bold]", highlight=False)

    change.__doc__ = help_text
    license_app.command(action)(change)


for _action, _help in (("suspend", "Suspend a valid license."), ("reinstate", "Reinstate a suspended license."),
                       ("revoke", "Revoke a license (--reason required)."),
                       ("cancel", "Cancel a license (注销)."),
                       ("expire", "Record that a license has expired (also derived from its date).")):
    _status_command(_action, _help)


def seal_image_command(
    agency: Annotated[str, typer.Argument(help="Agency code.")],
    image: Annotated[Path, typer.Argument(help="PNG seal image.")],
) -> None:
    """Set the agency's seal image, shown on its licenses and in its visible seals."""
    data = image.read_bytes()
    seal_image(data)  # InvalidSealImage unless a usable PNG
    p = _platform()
    with p.db.session() as session:
        record = agency_by_code(session, agency)
    key = set_seal_image(p, record.id, data, actor="operator")
    out.print(f"seal image of {agency} set ({len(data):,} bytes, sha256 {key[:16]}…)")


@license_app.command("import")
def import_licenses(
    file: Annotated[Path, typer.Argument(help="FILE.csv (header row of field names) or FILE.jsonl / FILE.ndjson "
                                              "(one JSON object per line); optional request_key column.")],
    type_code: Annotated[str, typer.Option("--type", help="License type code (the agency's own).")],
    agency: Annotated[str, typer.Option(help="Code of the issuing agency.")],
    workers: Annotated[Optional[int], typer.Option(min=1, help="Worker processes; default one per CPU.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write the rejected rows here as CSV (row, reason).")] = None,
) -> None:
    """Convert paper licenses in bulk: issue one license per row, in parallel, with a progress bar.

    Idempotent per row: running the same file again (after a crash, say) skips the rows already
    issued. Exit code 1 if any row was rejected (each with its row number and reason)."""
    import csv
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from api.bulk import BulkImport, default_workers
    from store import import_store

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.1f} rows/s" if task.speed else "– rows/s", style="progress.data.speed")

    p = _platform()
    with p.db.session() as session:
        issuer = agency_by_code(session, agency)
    count = workers or default_workers()
    start = time.perf_counter()
    with BulkImport(p, agency=issuer, type_code=type_code, path=file,
                    actor=Actor(agency_id=issuer.id, name="operator:import")) as bulk:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=out)
        with progress:
            task = progress.add_task(escape(file.name), total=bulk.estimated_rows())
            try:
                summary = bulk.run(workers=count,
                                   on_progress=lambda s: progress.update(task, completed=s.rows))
            except KeyboardInterrupt:
                out.print(f"interrupted: job {bulk.job_id} failed; run the same command again to go on "
                          "(rows already issued are skipped)")
                raise typer.Exit(130) from None
            progress.update(task, total=summary.rows, completed=summary.rows)
    seconds = time.perf_counter() - start
    out.print(f"job {bulk.job_id}: {summary.rows:,} rows: [bold]{summary.issued:,} issued[/bold], "
              f"{summary.skipped:,} skipped (issued before), "
              f"[{'red' if summary.rejected else 'green'}]{summary.rejected:,} rejected[/] in {seconds:,.1f} s "
              f"({summary.issued / seconds if seconds else 0:,.1f} licenses/s, {count} workers)", highlight=False)
    shown = 20
    with p.db.transaction() as connection:
        first = import_store.rejections(connection, bulk.job_id, limit=shown)
        if report is not None:  # written even when empty: "no rejections" is an answer too
            with open(report, "w", encoding="utf-8", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(["row", "reason"])
                writer.writerows(import_store.iter_rejections(connection, bulk.job_id))
    if not summary.rejected:
        return
    table = Table("row", "reason", title="rejected rows")
    for row, reason in first:
        table.add_row(str(row), escape(reason))
    out.print(table)
    if report is not None:
        out.print(f"all {summary.rejected:,} rejected rows written to {escape(str(report))}", highlight=False)
    elif summary.rejected > shown:
        out.print(f"… and {summary.rejected - shown:,} more: use --report FILE for all of them")
    raise typer.Exit(1)
