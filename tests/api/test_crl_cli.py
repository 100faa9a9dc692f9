"""``eauth crl publish``: the installed entry point, in its own process, on the session platform's
database (as a cron job would run beside the API processes)."""

from __future__ import annotations

import os
import subprocess

from store.models import Crl
from tests.api.test_cli import _entry_point, assert_one_line_error
from tests.helpers import PASSPHRASE


def _eauth(platform, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    settings = platform.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")} | {
        "EAUTH_DATA_DIR": str(settings.data_dir), "EAUTH_DATABASE_URL": settings.resolved_database_url,
        "EAUTH_KEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200",
    }
    return subprocess.run([*_entry_point(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def _numbers(platform) -> dict[str, int]:
    with platform.db.session() as session:
        return {crl.issuer: crl.number for crl in session.query(Crl)}


def _rows(stdout: str) -> dict[str, list[str]]:
    """CA name → the cells of its row in the printed table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if cells and cells[0] in ("root", "citizen", "enterprise", "seal"):
            rows[cells[0]] = cells
    return rows


def test_publish_every_ca(platform, tmp_path):
    before = _numbers(platform)
    result = _eauth(platform, tmp_path, "crl", "publish")
    assert result.returncode == 0, result.stderr
    rows = _rows(result.stdout)
    assert sorted(rows) == ["citizen", "enterprise", "root", "seal"]
    after = _numbers(platform)
    for name, cells in rows.items():
        assert int(cells[1]) == after[name] > before.get(name, 0)
        assert cells[2].replace(",", "").isdigit()  # entries
        assert "next update" in result.stdout and cells[4].startswith("20")


def test_publish_one_ca(platform, tmp_path):
    before = _numbers(platform)
    result = _eauth(platform, tmp_path, "crl", "publish", "--ca", "citizen")
    assert result.returncode == 0, result.stderr
    assert list(_rows(result.stdout)) == ["citizen"]
    after = _numbers(platform)
    assert after["citizen"] > before.get("citizen", 0)
    assert {k: v for k, v in after.items() if k != "citizen"} == {k: v for k, v in before.items() if k != "citizen"}


def test_publish_unknown_ca(platform, tmp_path):
    assert_one_line_error(_eauth(platform, tmp_path, "crl", "publish", "--ca", "ocsp-root"), "not_found", "ocsp-root")
