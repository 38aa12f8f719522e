"""Real databases for the fault tests: PostgreSQL (never skipped) and DuckDB files.

The PostgreSQL server is the session's (``tests/conftest.py``: ``PROVWH_TEST_POSTGRES_URL``,
127.0.0.1:5432 or a throwaway cluster); each test gets its own database, copied from the
template at the schema head (``pg_support``) and dropped afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests import reliability_helpers

from pg_support import PgDatabases  # noqa: E402


@pytest.fixture
def pg_url(pg_server):
    """A fresh database at the schema head (SQLAlchemy URL form), dropped after the test."""
    dbs = PgDatabases(pg_server, "provwh_r_")
    yield dbs.create()
    dbs.drop_all()


@pytest.fixture
def duck_path(tmp_path):
    return str(tmp_path / "warehouse.duckdb")


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request):
    """``(kind, location)``: the same test runs on a DuckDB file and on PostgreSQL."""
    if request.param == "duckdb":
        return "duckdb", request.getfixturevalue("duck_path")
    return "postgres", request.getfixturevalue("pg_url")
