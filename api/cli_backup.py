"""``eauth backup FILE`` and ``eauth restore FILE`` (容灾备份): the database, documents, encrypted key
files and non-secret settings in one archive (see ``store.backup``); never the passphrase."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape

from eauth.errors import KeyStoreLocked
from eauth.settings import Settings

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

#: Settings that make the platform what it is: a restore under other values warns.
IDENTITY = ("platform_name", "public_base_url", "key_algorithm", "key_backend")
#: Where the instance lives, not what it is (and a database URL may hold a password).
_LOCAL = {"data_dir", "database_url", "pkcs11_module"}


def public_settings(settings: Settings) -> dict[str, Any]:
    """Every setting except secrets (passphrase, PIN and their files) and machine-local paths."""
    values = settings.model_dump(mode="json")
    return {name: values[name] for name, field in Settings.model_fields.items()
            if name not in _LOCAL and not name.endswith("_file") and "SecretStr" not in str(field.annotation)
            and not isinstance(getattr(settings, name), SecretStr)}


def backup_command(
    file: Annotated[Path, typer.Argument(help="The archive to write (.tar.gz); never overwritten.")],
) -> None:
    """Back up the platform, running or stopped: database (one consistent snapshot), documents, encrypted
    key files and non-secret settings. Needs no passphrase; the archive is useless without it."""
    from store.backup import create_backup

    settings = Settings()
    summary = create_backup(file, database_url=settings.resolved_database_url, data_dir=Path(settings.data_dir),
                            config=public_settings(settings))
    out.print(f"backup written to {escape(str(summary.path))} ({summary.size:,} bytes): {summary.rows:,} rows in "
              f"{summary.tables} tables, {summary.documents:,} documents, {summary.key_files} key files")


def restore_command(
    file: Annotated[Path, typer.Argument(help="An archive made by `eauth backup`.")],
) -> None:
    """Restore a backup into an empty data dir and an empty database (EAUTH_DATA_DIR, EAUTH_DATABASE_URL):
    every member is checked against the manifest first; nothing is left half-restored. The key store must
    open with the current passphrase (EAUTH_KEY_PASSPHRASE[_FILE])."""
    from keys.filestore import FileKeyStore
    from store.backup import restore_backup

    settings = Settings()

    def check_keys(directory: Path) -> None:
        if settings.key_backend == "file":
            try:
                FileKeyStore(directory, settings.key_store_passphrase())
            except KeyStoreLocked as exc:
                if "wrong key passphrase" not in exc.detail:
                    raise
                raise KeyStoreLocked("the backup's key store does not open with this key passphrase "
                                     "(EAUTH_KEY_PASSPHRASE[_FILE]): nothing restored") from None

    summary = restore_backup(file, database_url=settings.resolved_database_url,
                             data_dir=Path(settings.data_dir), check_keys=check_keys)
    out.print(f"restored {summary.rows:,} rows in {summary.tables} tables (schema {', '.join(summary.revisions)}), "
              f"{summary.documents:,} documents and {summary.key_files} key files into "
              f"{escape(str(settings.data_dir))}")
    current = public_settings(settings)
    for name in IDENTITY:
        if name in summary.config and summary.config[name] != current.get(name):
            err.print(f"[yellow]warning[/yellow]: EAUTH_{name.upper()} is {escape(repr(current.get(name)))} here, "
                      f"{escape(repr(summary.config[name]))} in the backup (see config-from-backup.json)")
