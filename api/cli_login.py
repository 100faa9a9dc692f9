"""``eauth login`` (a holder logs in with a PKCS#12 and gets a login token) and ``eauth login-keys``
(the keys that sign login tokens: list, rotate)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from eauth.errors import InvalidInput

login_keys_app = typer.Typer(help="Keys that sign holder login tokens (published in /.well-known/jwks.json).",
                             no_args_is_help=True)
out = Console(soft_wrap=True)
PASSWORD_VARIABLE = "EAUTH_P12_PASSWORD"


def login_command(
    p12: Annotated[Path, typer.Option("--p12", help="The holder's PKCS#12 file (certificate and key).")],
    audience: Annotated[str, typer.Option("--audience", help="The service to log in to ('eauth': this platform).")],
    url: Annotated[str, typer.Option("--url", help="The platform's base URL.")] = "http://127.0.0.1:8000",
    password_file: Annotated[Optional[Path], typer.Option(
        "--password-file", help=f"File holding the PKCS#12 password (default: ${PASSWORD_VARIABLE}).")] = None,
) -> None:
    """Log in with a certificate: sign the platform's challenge with the PKCS#12 key and print the token."""
    from api.login_client import load_pkcs12, login

    if password_file is not None:
        password = password_file.read_text().strip()
    else:
        password = os.environ.get(PASSWORD_VARIABLE)
        if not password:
            raise InvalidInput(f"no PKCS#12 password: use --password-file or set {PASSWORD_VARIABLE}")
    credential = load_pkcs12(p12.read_bytes(), password)
    print(login(url.rstrip("/"), credential, audience=audience).token)


@login_keys_app.command("list")
def list_keys() -> None:
    """The published login keys, newest first: the first unretired one signs."""
    from api.cli import _platform
    from api.login import utcnow
    from store.login_store import login_keys

    p = _platform()
    with p.db.transaction() as connection:
        records = login_keys(connection, now=utcnow())
    table = Table("kid", "label", "created", "retired", "published until")
    for r in records:
        table.add_row(r.kid, r.label, r.created_at.isoformat(timespec="seconds"),
                      r.retired_at.isoformat(timespec="seconds") if r.retired_at else "signing",
                      r.not_after.isoformat(timespec="seconds") if r.not_after else "—")
    out.print(table)


@login_keys_app.command("rotate")
def rotate() -> None:
    """Make a new login key that signs from now on; the previous one stays published until every
    token it signed has expired."""
    from api.cli import _platform
    from api.login import login_service

    record = login_service(_platform()).rotate()
    out.print(f"new login key {record.kid} ({record.label}) signs from now on", highlight=False)
