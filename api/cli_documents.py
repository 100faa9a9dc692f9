"""``eauth documents sweep``: the documents no record names (docs/resilience.md).

A PDF is written to the blob store before the record naming it is committed, so a record never exists
without its PDF; a process killed between the two (SIGKILL, power loss) or a transaction that failed
after the write leaves a PDF no record names. Such a file is never served (every read goes through a
record), only takes space: this lists it, and with ``--delete`` removes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from api.platform import Platform
from eauth.settings import Settings
from store.blobs import FileBlobStore, referenced_keys

documents_app = typer.Typer(help="The document (blob) store.", no_args_is_help=True)
out = Console(soft_wrap=True)


@documents_app.command("sweep")
def sweep(
    older_than_hours: Annotated[float, typer.Option(
        min=0, help="Only files older than this: a younger one may belong to an issuance still in flight.")] = 24,
    delete: Annotated[bool, typer.Option(help="Remove them (default: only list them).")] = False,
) -> None:
    """List (or --delete) documents no record names: left by a process stopped between writing a PDF
    and recording it, or by an interrupted write."""
    platform = Platform.open(Settings())
    try:
        with platform.db.transaction() as connection:
            referenced = referenced_keys(connection)
        store = FileBlobStore(Path(platform.settings.data_dir) / "documents")
        found = list(store.unreferenced(referenced, older_than_seconds=older_than_hours * 3600))
    finally:
        platform.close()
    for path in found:
        if delete:
            path.unlink(missing_ok=True)
        out.print(f"{'removed' if delete else 'unreferenced'} {escape(str(path))}", highlight=False)
    out.print(f"{len(found)} unreferenced document file(s){' removed' if delete else ''}.")
