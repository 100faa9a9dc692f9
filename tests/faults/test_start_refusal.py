"""A platform that cannot open its keys or its database refuses at start: ``eauth serve``, ``eauth init``
and ``eauth cert issue`` run as processes exit non-zero with one line on stderr naming the problem, no
traceback, and ``serve`` never binds its port. (``agency list`` with a wrong or missing passphrase is
in tests/api/test_cli.py; the key store's own refusals in tests/keys/test_pkcs11store.py.)"""

from __future__ import annotations

import pytest

from tests.conftest import fresh_database
from tests.faults.conftest import Deployment, free_port
from tests.helpers import citizen_id

COMMANDS = {
    "serve": ("serve", "--port", "{port}"),
    "init": ("init",),
    "cert issue": ("cert", "issue", "--profile", "citizen", "--name", "张三", "--id-number", "{id}",
                   "--agency", "any", "--p12", "{dir}/out.p12", "--p12-password-file", "{dir}/p12-password"),
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Deployment:
    root = tmp_path_factory.mktemp("refusal")
    databases = fresh_database(root)
    deployment = Deployment(root, next(databases))
    deployment.ok("init")
    (root / "p12-password").write_text("p12 secret\n")
    yield deployment
    databases.close()


def _refused(deployment: Deployment, command: str, env: dict[str, str | None], *needles: str) -> None:
    """``command`` exits non-zero with one line on stderr holding each of ``needles``, no traceback."""
    args = [a.format(port=free_port(), id=citizen_id(), dir=deployment.root) for a in COMMANDS[command]]
    done = deployment.eauth(*args, env=env)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_wrong_passphrase(deployment, command):
    _refused(deployment, command, {"EAUTH_KEY_PASSPHRASE": "not the passphrase"}, "key_store_locked", "passphrase")
    assert not (deployment.root / "out.p12").exists()


def test_empty_passphrase_file(deployment, tmp_path):
    empty = tmp_path / "passphrase"
    empty.write_text("\n")
    _refused(deployment, "init", {"EAUTH_KEY_PASSPHRASE": None, "EAUTH_KEY_PASSPHRASE_FILE": str(empty)},
             "key_store_locked", "is empty")


def test_database_unreachable(deployment):
    nobody = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/eauth"
    _refused(deployment, "serve", {"EAUTH_DATABASE_URL": nobody}, "database_unavailable")


@pytest.fixture
def pkcs11_env(softhsm_token, tmp_path) -> dict[str, str]:
    module, label, pin = softhsm_token
    (tmp_path / "pin").write_text(pin + "\n")
    return {"EAUTH_KEY_BACKEND": "pkcs11", "EAUTH_PKCS11_MODULE": str(module), "EAUTH_PKCS11_TOKEN": label,
            "EAUTH_PKCS11_PIN_FILE": str(tmp_path / "pin"), "EAUTH_KEY_PASSPHRASE": None}


def test_hsm_token_missing(deployment, pkcs11_env):
    _refused(deployment, "serve", pkcs11_env | {"EAUTH_PKCS11_TOKEN": "no-such-token"},
             "key_store_error", "no-such-token")


def test_hsm_wrong_pin(deployment, pkcs11_env, tmp_path):
    (tmp_path / "wrong-pin").write_text("0000\n")
    _refused(deployment, "cert issue", pkcs11_env | {"EAUTH_PKCS11_PIN_FILE": str(tmp_path / "wrong-pin")},
             "key_store_locked", "PIN")


def test_hsm_module_missing(deployment, pkcs11_env, tmp_path):
    _refused(deployment, "serve", pkcs11_env | {"EAUTH_PKCS11_MODULE": str(tmp_path / "libmissing.so")},
             "key_store_error", "libmissing.so")


def test_the_platform_starts_with_the_right_secrets(deployment):
    """The refusals above are the secrets' doing: with the right ones it serves."""
    with deployment.serve() as node:
        assert node.process.poll() is None
