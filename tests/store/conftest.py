"""Store fixtures: a database of its own per test, migrated to the latest schema."""

from __future__ import annotations

import pytest

from store.db import Database
from tests.conftest import fresh_database


@pytest.fixture
def db(tmp_path):
    urls = fresh_database(tmp_path)
    database = Database(next(urls))
    database.migrate()
    yield database
    database.dispose()
    urls.close()
